import NetbootHost
import XCTest

/// The chunk size a body reads with, from the number of bodies streaming at once.
final class StreamingBudgetTests: XCTestCase {
    func testALoneBodyReadsItsLargestChunkAndAHerdShareTheBudget() {
        let budget = StreamingBudget(bytes: 32 << 20)
        XCTAssertEqual(budget.chunkSize(maximum: 1 << 20), 1 << 20, "no body yet")
        func streaming(_ count: Int) -> Int {
            for _ in 0..<count { budget.enter() }
            defer { for _ in 0..<count { budget.leave() } }
            return budget.chunkSize(maximum: 1 << 20)
        }
        XCTAssertEqual(streaming(1), 1 << 20)
        XCTAssertEqual(streaming(32), 1 << 20)
        XCTAssertEqual(streaming(33), 512 << 10)
        XCTAssertEqual(streaming(200), 128 << 10)
        XCTAssertEqual(streaming(5000), StreamingBudget.minimumChunk, "never below the minimum")
        XCTAssertEqual(budget.activeStreams, 0)
        XCTAssertEqual(budget.chunkSize(maximum: 4096), 4096, "never above a body's own maximum")
    }
}
