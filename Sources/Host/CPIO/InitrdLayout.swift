/// The fixed parts of every initrd and the names inside it.
///
/// An initrd is: the leader (directories every later entry needs), the loader (the `register` script),
/// then one archive per store path. Leader and loader are uncompressed and come first, so they sit at
/// offsets that are multiples of 4 as the kernel requires.
package enum InitrdLayout {
    /// Bumped whenever the bytes of a per-path archive would change; part of every cache file name.
    package static let formatVersion = 4

    /// Where registrations and the loader live inside the initrd.
    package static let databaseDirectory = "nix/.nix-netboot-serve-db"
    package static let registrationDirectory = databaseDirectory + "/registration"
    package static let registerScript = databaseDirectory + "/register"

    /// The group Nix's store directory belongs to on NixOS (`nixbld`).
    package static let storeGroup: UInt32 = 30000

    /// The uncompressed leader archive: `.`, `nix`, `nix/store`, and the database directories.
    package static func makeLeader() throws -> [UInt8] {
        var writer = NewcWriter(sink: MemorySink())
        try writer.appendDirectory(Array(".".utf8), mode: 0o755)
        try writer.appendDirectory(Array("nix".utf8), mode: 0o755)
        try writer.appendDirectory(Array("nix/store".utf8), mode: 0o1775, gid: storeGroup)
        try writer.appendDirectory(Array(databaseDirectory.utf8), mode: 0o755)
        try writer.appendDirectory(Array(registrationDirectory.utf8), mode: 0o755)
        return try writer.finish().bytes
    }

    /// The `register` script: loads every registration in the initrd with one `nix-store --load-db`.
    ///
    /// It finds the registrations next to itself, so it also works on an unpacked copy of the initrd.
    package static let registerScriptText = """
        #!/bin/sh
        # Registers the store paths of this netbooted closure in the Nix database.
        # Written by nix-netboot-serve; run as: PATH=/path/to/nix/bin:$PATH \(registerScript)
        set -eu
        here=$(dirname "$0")
        cat "$here"/registration/* | nix-store --load-db

        """

    /// The uncompressed loader archive holding the executable `register` script.
    package static func makeLoader() throws -> [UInt8] {
        var writer = NewcWriter(sink: MemorySink())
        try writer.appendFile(Array(registerScript.utf8), mode: 0o555, contents: Array(registerScriptText.utf8))
        return try writer.finish().bytes
    }

    /// The archive name of a path's registration file.
    package static func registrationName(_ path: StorePath) -> [UInt8] {
        Array((registrationDirectory + "/" + path.name).utf8)
    }
}
