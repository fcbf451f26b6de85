import HTTPTypes
@testable import NetbootHost
import XCTest

/// The deadlines and endings of a connection between requests, without a socket.
final class RequestReadingStateMachineTests: XCTestCase {
    typealias Machine = RequestReadingStateMachine

    func testDeadlinesRunOnlyWhileWaitingForARequest() {
        var machine = Machine()
        XCTAssertEqual(machine.connectionActive(), .startBoth)
        XCTAssertEqual(machine.bytesArrived(), .restartIdle)
        XCTAssertEqual(machine.headRead(), .cancelBoth)
        machine.endRead()
        XCTAssertEqual(machine.bytesArrived(), .none, "a response under way has no deadline")
        XCTAssertEqual(machine.deadlinePassed(.idle, seconds: 5), .ignore, "a download is never cut")
        XCTAssertEqual(machine.responseEnded(), .startBoth, "the next request's clock starts at the end of the response")
        XCTAssertEqual(machine.deadlinePassed(.idle, seconds: 5), .close, "nothing asked: closed silently")
        XCTAssertEqual(machine.deadlinePassed(.header, seconds: 10), .ignore)
    }

    func testAPartialRequestGets408() {
        var machine = Machine()
        _ = machine.connectionActive()
        _ = machine.bytesArrived()
        XCTAssertEqual(machine.deadlinePassed(.header, seconds: 10), .answer(.init(status: .requestTimeout, text: "request headers not complete within 10 s")))
        XCTAssertEqual(machine.deadlinePassed(.idle, seconds: 5), .ignore)
    }

    func testPipelinedRequestsKeepTheDeadlinesOff() {
        var machine = Machine()
        _ = machine.connectionActive()
        _ = machine.headRead()
        machine.endRead()
        _ = machine.headRead()
        machine.endRead()
        XCTAssertEqual(machine.responseEnded(), .none)
        XCTAssertEqual(machine.responseEnded(), .startBoth)
    }

    func testParserFailuresAreAnsweredUnlessAResponseIsUnderWay() {
        let answer = Machine.Answer(status: .badRequest, text: "malformed request")
        var waiting = Machine()
        _ = waiting.connectionActive()
        XCTAssertEqual(waiting.parserFailed(answer), .answer(answer))
        XCTAssertEqual(waiting.parserFailed(answer), .ignore)
        var busy = Machine()
        _ = busy.headRead()
        XCTAssertEqual(busy.parserFailed(answer), .close)
    }

    func testTheClientClosingHalfWayIsAnswered() {
        var nothing = Machine()
        _ = nothing.connectionActive()
        XCTAssertEqual(nothing.inputClosed(), .passOn)
        var partial = Machine()
        _ = partial.connectionActive()
        _ = partial.bytesArrived()
        guard case .answer(let answer) = partial.inputClosed() else { return XCTFail("no answer") }
        XCTAssertEqual(answer.status, .badRequest)
        var busy = Machine()
        _ = busy.headRead()
        XCTAssertEqual(busy.inputClosed(), .passOn, "the response under way finishes")
    }
}
