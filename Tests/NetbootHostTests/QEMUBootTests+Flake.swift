import Foundation
import XCTest

extension QEMUBootTests {
    /// A `path:` flake without inputs whose `nixosConfigurations.rack-a` is the boot fixture system,
    /// with the fixture, the kernel and busybox copied into the flake so the evaluation stays pure.
    func testBootsThroughTheFlakeSource() async throws {
        let flake = try makeTemporaryDirectory(self, "flake")
        let kernelName = URL(fileURLWithPath: Self.kernel).lastPathComponent
        try FileManager.default.copyItem(atPath: repositoryRoot + "/Tests/fixtures/boot/system.nix", toPath: flake + "/system.nix")
        try FileManager.default.copyItem(atPath: Self.kernel, toPath: flake + "/" + kernelName)
        try FileManager.default.copyItem(atPath: busyboxDirectory + "/bin", toPath: flake + "/busybox")
        let variant = "flake-\(UUID().uuidString.prefix(8).lowercased())"
        try """
        {
          outputs = { self }: {
            nixosConfigurations."rack-a" = {
              config.system.build.toplevel = import ./system.nix {
                kernelPath = ./\(kernelName);
                busybox = ./busybox/busybox;
                variant = "\(variant)";
              };
            };
          };
        }
        """.write(toFile: flake + "/flake.nix", atomically: true, encoding: .utf8)
        let server = try ServerProcess(self, arguments: ["--flake", "infra=path:\(flake)"])
        try await boot(server, "/dispatch/flake/infra/rack-a?cmdline_prefix_args=nns.from%3Dflake", expect: variant)
        XCTAssertFalse(FileManager.default.fileExists(atPath: flake + "/flake.lock"), "the lock file is never written")
    }
}
