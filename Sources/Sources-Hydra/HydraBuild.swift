#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The parts of Hydra's build JSON (`GET /build/ID`) this server reads.
///
/// Only `buildoutputs.out.path` is required. `finished` and `buildstatus` are checked when they are
/// numbers; other fields (`nixname`, `system`, `buildproducts`, timestamps) are ignored.
struct HydraBuild: Decodable, Sendable {
    var id: Int?
    /// 1 once the build has finished.
    var finished: Int?
    /// 0 for a successful build.
    var buildstatus: Int?
    var buildoutputs: [String: Output]?

    /// One output of the build.
    struct Output: Decodable, Sendable {
        var path: String?
    }

    private enum CodingKeys: String, CodingKey {
        case id, finished, buildstatus, buildoutputs
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Lenient where Hydra versions differ (null while running, booleans in some versions).
        id = try? container.decodeIfPresent(Int.self, forKey: .id)
        finished = try? container.decodeIfPresent(Int.self, forKey: .finished)
        buildstatus = try? container.decodeIfPresent(Int.self, forKey: .buildstatus)
        buildoutputs = try container.decodeIfPresent([String: Output].self, forKey: .buildoutputs)
    }

    /// Decodes a response body.
    static func decode(_ body: [UInt8]) throws -> HydraBuild {
        try JSONDecoder().decode(HydraBuild.self, from: Data(body))
    }

    /// The `out` output's path, or why there is none to boot.
    func outPath() throws(HydraBuildProblem) -> String {
        if let finished, finished == 0 { throw HydraBuildProblem(reason: "has not finished") }
        if let buildstatus, buildstatus != 0 { throw HydraBuildProblem(reason: "did not succeed (buildstatus \(buildstatus))") }
        guard let path = buildoutputs?["out"]?.path else { throw HydraBuildProblem(reason: "has no 'out' output path") }
        return path
    }
}

/// Why a Hydra build cannot be booted.
struct HydraBuildProblem: Error {
    var reason: String
}
