import NetbootHost
import XCTest

/// The progress of a packing pass, without I/O: counts, the share done, the time left, log fields.
final class PackingProgressTests: XCTestCase {
    func testCountsPathsAndBytesAndEstimatesTheTimeLeftFromTheBytesDone() {
        var progress = PackingProgress(system: "abc-system")
        progress.plan(paths: 4, bytes: 1000)
        XCTAssertEqual(progress.fraction, 0)
        XCTAssertNil(progress.remaining(after: .seconds(3)), "no rate before anything finished")
        progress.finished(bytes: 250)
        XCTAssertEqual(progress.donePaths, 1)
        XCTAssertEqual(progress.doneBytes, 250)
        XCTAssertEqual(progress.fraction, 0.25)
        // A quarter in 10 s: three quarters left take 30 s.
        XCTAssertEqual(progress.remaining(after: .seconds(10)), .seconds(30))
        progress.finished(bytes: 750)
        XCTAssertEqual(progress.remaining(after: .seconds(12)), .zero)
        // A tiny path done first says nothing about the big ones still packing.
        var early = PackingProgress(system: "s")
        early.plan(paths: 2, bytes: 50_000_000)
        early.finished(bytes: 808)
        XCTAssertNil(early.remaining(after: .seconds(7)))
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: early.logFields(elapsed: .seconds(7)))["remaining-seconds"], "unknown")
        let fields = Dictionary(uniqueKeysWithValues: progress.logFields(elapsed: .seconds(12)))
        XCTAssertEqual(fields["paths"], "2/4")
        XCTAssertEqual(fields["bytes"], "1000/1000")
        XCTAssertEqual(fields["percent"], "100")
        XCTAssertEqual(fields["elapsed-seconds"], "12.0")
        XCTAssertEqual(fields["remaining-seconds"], "0.0")
    }

    func testWithoutSizesTheShareIsByPathsAndTotalsNeverFallBelowWhatIsDone() {
        var progress = PackingProgress(system: "s")
        progress.plan(paths: 2, bytes: 0)
        progress.finished(bytes: 0)
        XCTAssertEqual(progress.fraction, 0.5)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: progress.logFields(elapsed: .seconds(1)))["remaining-seconds"], "1.0")
        progress.finished(bytes: 10)
        progress.finished(bytes: 10)
        XCTAssertEqual(progress.totalPaths, 3)
        XCTAssertEqual(progress.totalBytes, 20)
        XCTAssertEqual(progress.fraction, 1)
    }

    func testTheSummaryGivesMegabytesPerSecondPerCore() {
        var progress = PackingProgress(system: "s")
        progress.plan(paths: 1, bytes: 80_000_000)
        progress.finished(bytes: 80_000_000)
        let fields = Dictionary(uniqueKeysWithValues: progress.summaryFields(elapsed: .seconds(4), cores: 2))
        XCTAssertEqual(fields["packed"], "1")
        XCTAssertEqual(fields["bytes"], "80000000")
        XCTAssertEqual(fields["seconds"], "4.0")
        XCTAssertEqual(fields["mb-per-second-per-core"], "10.0")  // 80 MB in 4 s on 2 cores
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: progress.summaryFields(elapsed: .zero, cores: 0))["mb-per-second-per-core"], "0.0")
    }

    func testDecimalsRoundWithoutFoundation() {
        XCTAssertEqual(PackingProgress.decimal(2.25, places: 1), "2.3")
        XCTAssertEqual(PackingProgress.decimal(0.04, places: 1), "0.0")
        XCTAssertEqual(PackingProgress.decimal(-1.5, places: 2), "-1.50")
        XCTAssertEqual(PackingProgress.decimal(12.0, places: 0), "12")
        XCTAssertEqual(PackingProgress.decimal(.nan, places: 1), "0")
        XCTAssertEqual(PackingProgress.decimal(3.007, places: 3), "3.007")
    }
}
