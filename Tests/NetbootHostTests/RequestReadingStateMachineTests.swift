import HTTPTypes
@testable import NetbootHost
import XCTest

/// The deadlines and endings of a connection between requests, without a socket.
final class RequestReadingStateMachineTests: XCTestCase {
    typealias Machine = RequestReadingStateMachine

    func testDeadlinesRunOnlyWhileWaitingForARequest() {
        var machine = Machine()
        XCTAssertEqual(machine.connectionActive(), .startBoth)
        XCTAssertEqual(machine.bytesArrived(decodedParts: false), .restartIdle)
        XCTAssertEqual(machine.headRead(), .cancelBoth)
        machine.endRead()
        XCTAssertEqual(machine.bytesArrived(decodedParts: false), .none, "a response under way has no deadline")
        XCTAssertEqual(machine.deadlinePassed(.idle, seconds: 5), .ignore, "a download is never cut")
        XCTAssertEqual(machine.responseEnded(), .startBoth, "the next request's clock starts at the end of the response")
        XCTAssertEqual(machine.deadlinePassed(.idle, seconds: 5), .close, "nothing asked: closed silently")
        XCTAssertEqual(machine.deadlinePassed(.header, seconds: 10), .ignore)
    }

    func testAPartialRequestGets408() {
        var machine = Machine()
        _ = machine.connectionActive()
        _ = machine.bytesArrived(decodedParts: false)
        XCTAssertEqual(machine.deadlinePassed(.header, seconds: 10), .answer(.init(status: .requestTimeout, text: "request headers not complete within 10 s")))
        XCTAssertEqual(machine.deadlinePassed(.idle, seconds: 5), .ignore)
    }

    func testTheRestOfAnAnsweredBodyIsNotARequest() {
        var machine = Machine()
        _ = machine.connectionActive()
        _ = machine.headRead()
        _ = machine.responseEnded()
        machine.endRead()
        XCTAssertEqual(machine.bytesArrived(decodedParts: true), .restartIdle)
        XCTAssertEqual(machine.deadlinePassed(.header, seconds: 10), .close, "nothing of a next request arrived: no 408")
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
        XCTAssertEqual(busy.parserFailed(answer), .closeAfterResponse, "the request read before is answered first")
    }

    func testABodyCutShortAfterItsRequestWasAnsweredGetsNoSecondAnswer() {
        var machine = Machine()
        _ = machine.connectionActive()
        _ = machine.headRead()  // a PUT with a body the route does not read
        XCTAssertEqual(machine.responseEnded(), .startBoth, "answered (405) before its body ended")
        let cut = Machine.Answer(status: .badRequest, text: "incomplete request")
        XCTAssertEqual(machine.parserFailed(cut), .close, "one answer per request: the connection just closes")
    }

    func testTheClientClosingItsSideLetsTheServerFinish() {
        var nothing = Machine()
        _ = nothing.connectionActive()
        XCTAssertEqual(nothing.inputClosed(), .passOn)
        var busy = Machine()
        _ = busy.headRead()
        XCTAssertEqual(busy.inputClosed(), .passOn, "the response under way finishes")
        var answered = Machine()
        _ = answered.parserFailed(.init(status: .badRequest, text: "x"))
        XCTAssertEqual(answered.inputClosed(), .ignore)
    }
}
