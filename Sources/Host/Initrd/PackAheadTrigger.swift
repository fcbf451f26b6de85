import ArgumentParser

/// When the server packs a system's initrd ahead of its request (`--pack-ahead`).
///
/// Behind a load balancer that hashes `/boot/NAME/…` on NAME, a dispatch lands on any replica while
/// the system's initrd is served by one: packing on dispatch would pack it on the wrong replica.
/// `script` packs where the initrd will be asked for, since the script's URL carries NAME too.
package enum PackAheadTrigger: String, CaseIterable, Sendable, ExpressibleByArgument {
    /// When a dispatch resolves the system (one server: the earliest moment).
    case dispatch
    /// When `/boot/NAME/netboot.ipxe` is served (a fleet: on the replica NAME hashes to), while
    /// iPXE fetches the kernel.
    case script
    /// Never: the initrd request packs what it needs.
    case off
}
