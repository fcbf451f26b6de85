import XCTest

@testable import HydraSource

/// The libcurl client on its own, against the stand-in.
final class HTTPFetcherTests: XCTestCase {
    func testStatusBodyAndHeaders() async throws {
        var setup = StandInHydra.Setup()
        setup.builds[7] = #"{"id":7}"#
        try await StandInHydra.with(setup) { hydra in
            let fetcher = HTTPFetcher()
            let ok = try await fetcher.get(hydra.baseURL + "/build/7", headers: ["Accept: application/json"])
            XCTAssertEqual(ok.status, 200)
            XCTAssertEqual(String(decoding: ok.body, as: UTF8.self), #"{"id":7}"#)
            let teapot = try await fetcher.get(hydra.baseURL + "/test/teapot")
            XCTAssertEqual(teapot.status, 418)
            XCTAssertEqual(hydra.requests.map(\.accept), ["application/json", "*/*"], "curl's default unless told")
        }
    }

    func testRedirectsAndSizesAreBounded() async throws {
        try await StandInHydra.with(.init()) { hydra in
            var fetcher = HTTPFetcher()
            fetcher.maximumRedirects = 3
            await assertFails(fetcher, hydra.baseURL + "/test/redirect-loop", mentioning: "redirect")
            XCTAssertEqual(hydra.requests.count, 4, "the first request and three redirects")
            await assertFails(fetcher, hydra.baseURL + "/test/redirect-to-ftp", mentioning: "ftp")
            let before = hydra.requests.count
            await assertFails(fetcher, hydra.baseURL + "/test/redirect-elsewhere", mentioning: "outside the Hydra the operator named")
            XCTAssertEqual(hydra.requests.count, before + 1, "nothing beyond the named Hydra is contacted")
            XCTAssertEqual(HTTPFetcher.origin(of: "HTTP://Hydra.example/job/x"), "http://hydra.example:80")
            XCTAssertEqual(HTTPFetcher.origin(of: "https://[::1]:8443/x"), "https://[::1]:8443")
            XCTAssertNil(HTTPFetcher.origin(of: "ftp://host/x"))
            await assertFails(fetcher, hydra.baseURL + "/test/large", mentioning: "larger than \(4 << 20) bytes")
            fetcher.maximumBodySize = 6 << 20
            let large = try await fetcher.get(hydra.baseURL + "/test/large")
            XCTAssertEqual(large.body.count, 5 << 20)
        }
    }

    func testCancellingTheCallerStopsTheTransferAndClosesItsConnection() async throws {
        try await SilentHydra.with { hydra in
            let fetcher = HTTPFetcher()
            let transfer = Task { try await fetcher.get(hydra.baseURL + "/job/P/J/x/latest") }
            let clock = ContinuousClock()
            var waited = Duration.zero
            while hydra.counts.accepted == 0, waited < .seconds(5) {
                try await Task.sleep(for: .milliseconds(20))
                waited += .milliseconds(20)
            }
            XCTAssertEqual(hydra.counts, .init(accepted: 1, closed: 0), "connected, and held without an answer")
            let cancelled = clock.now
            transfer.cancel()
            do {
                let response = try await transfer.value
                XCTFail("a cancelled transfer must fail, got HTTP \(response.status)")
            } catch let error as HTTPFetcher.Failure {
                XCTAssertTrue(error.message.contains("cancelled"), error.description)
            }
            // libcurl reports progress about once a second while nothing moves.
            XCTAssertLessThan(clock.now - cancelled, .milliseconds(2500), "the transfer stopped soon after the cancellation")
            waited = .zero
            while hydra.counts.closed == 0, waited < .seconds(2) {
                try await Task.sleep(for: .milliseconds(20))
                waited += .milliseconds(20)
            }
            XCTAssertEqual(hydra.counts, .init(accepted: 1, closed: 1), "the connection was closed")
        }
    }

    func assertFails(_ fetcher: HTTPFetcher, _ url: String, mentioning expected: String, line: UInt = #line) async {
        do {
            let response = try await fetcher.get(url)
            XCTFail("expected a failure, got HTTP \(response.status)", line: line)
        } catch {
            XCTAssertTrue(error.description.lowercased().contains(expected.lowercased()), error.description, line: line)
        }
    }
}
