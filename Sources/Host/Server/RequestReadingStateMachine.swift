import HTTPTypes

/// The bookkeeping of one connection between requests, without I/O: when the header and idle
/// deadlines run, and what a deadline, a parser failure or the client's end of input leads to.
///
/// A connection is *waiting* when every request read so far has been answered: from accept, and
/// from the end of each response. Only a waiting connection has deadlines; a response in progress
/// (a download) is never cut by them.
struct RequestReadingStateMachine: Equatable {
    /// A one-line answer sent before the connection closes.
    struct Answer: Equatable {
        var status: HTTPResponse.Status
        var text: String
    }

    /// What the handler does about the deadlines.
    enum TimerAction: Equatable {
        /// Start both deadlines from now.
        case startBoth
        /// Start the idle deadline again from now (bytes arrived); the header deadline keeps running.
        case restartIdle
        /// Cancel both deadlines (a request's head arrived).
        case cancelBoth
        case none
    }

    /// What the handler does when the connection is to end.
    enum Ending: Equatable {
        /// Send the answer, then close.
        case answer(Answer)
        /// Close without an answer (nothing was asked).
        case close
        /// A request is being answered: let that answer go out, then close.
        case closeAfterResponse
        /// Not this handler's business: pass the event on.
        case passOn
        /// Already closing: drop the event.
        case ignore
    }

    enum Deadline: Equatable { case header, idle }

    private(set) var requestsInFlight = 0
    private(set) var readingRequestBody = false
    /// Bytes of a next request arrived while waiting.
    private(set) var partialRequest = false
    private(set) var closing = false

    var isWaiting: Bool { requestsInFlight == 0 }

    mutating func connectionActive() -> TimerAction {
        closing ? .none : .startBoth
    }

    /// Bytes arrived. `decodedParts`: some of them were decoded as parts of a request (the rest of
    /// a body already answered), so they are not the start of a next request.
    mutating func bytesArrived(decodedParts: Bool) -> TimerAction {
        guard !closing, isWaiting else { return .none }
        if !decodedParts { partialRequest = true }
        return .restartIdle
    }

    mutating func headRead() -> TimerAction {
        requestsInFlight += 1
        readingRequestBody = true
        partialRequest = false
        return .cancelBoth
    }

    mutating func endRead() {
        readingRequestBody = false
    }

    mutating func responseEnded() -> TimerAction {
        requestsInFlight = max(0, requestsInFlight - 1)
        guard isWaiting, !closing else { return .none }
        partialRequest = false
        return .startBoth
    }

    mutating func deadlinePassed(_ deadline: Deadline, seconds: Double) -> Ending {
        guard !closing, isWaiting else { return .ignore }
        closing = true
        guard partialRequest, !readingRequestBody else { return .close }
        let text = switch deadline {
        case .header: "request headers not complete within \(Self.format(seconds)) s"
        case .idle: "nothing received for \(Self.format(seconds)) s in the middle of a request"
        }
        return .answer(Answer(status: .requestTimeout, text: text))
    }

    /// The HTTP parser gave up on the bytes received: answer, unless a request read before is being
    /// answered (then that answer goes out, and the connection ends after it), or the request whose
    /// body broke off was answered already (a route may answer before reading a body: one answer
    /// per request, so the connection just closes).
    mutating func parserFailed(_ answer: Answer) -> Ending {
        guard !closing else { return .ignore }
        closing = true
        if !isWaiting { return .closeAfterResponse }
        return readingRequestBody ? .close : .answer(answer)
    }

    /// The client closed its side. Whatever is under way finishes and the server closes. (A request
    /// cut short is reported by the parser itself, see ``parserFailed(_:)``; empty lines before a
    /// request line are no request, and end in a clean close.)
    mutating func inputClosed() -> Ending {
        closing ? .ignore : .passOn
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}
