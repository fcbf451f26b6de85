import CCurl

/// A plain HTTP(S) GET through libcurl, run on a dedicated thread.
///
/// Follows redirects by hand, a bounded number and only within the origin (scheme, host, port) of
/// the first URL: the server contacts only the Hydras the operator named, even if one of them says
/// to go elsewhere. Limits the time to connect and the time of each transfer, and refuses bodies
/// over a size cap. Cancelling the calling task stops the transfer (within about a second, when
/// libcurl next reports progress) and closes its connection; the call returns only once its thread
/// is done with it. A response of any status is a success here: the caller decides what a 404 means.
struct HTTPFetcher: Sendable {
    /// What the server answered (after following redirects).
    struct Response: Sendable {
        /// The status of the last response.
        var status: Int
        var body: [UInt8]
    }

    /// A transfer that did not produce a response: curl's own message, or the size cap.
    struct Failure: Error, CustomStringConvertible {
        var url: String
        var message: String
        var description: String { "GET \(url): \(message)" }
    }

    /// Time allowed to establish a connection (TCP and TLS).
    var connectTimeout: Duration = .seconds(10)
    /// Time allowed for the whole transfer, redirects included.
    var timeout: Duration = .seconds(60)
    var maximumRedirects = 5
    var maximumBodySize = 4 << 20
    var userAgent = "nix-netboot-serve"

    /// GETs `url` with the extra header lines `headers` (e.g. `"Accept: application/json"`).
    /// Cancelling the calling task stops the transfer with a ``Failure``.
    func get(_ url: String, headers: [String] = []) async throws(Failure) -> Response {
        let cancellation = TransferCancellation()
        let result: Result<Response, Failure>
        do {
            result = try await withTaskCancellationHandler {
                try await DedicatedThread.run { self.performBlocking(url, headers: headers, cancellation: cancellation) }
            } onCancel: {
                cancellation.cancel()
            }
        } catch {
            throw Failure(url: url, message: "\(error)")
        }
        return try result.get()
    }

    /// `curl_global_init` must run once before any handle exists; a static constant runs it once.
    private static let globalInitialisation: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

    /// The transfer itself; blocks the calling thread until it ends, or soon after `cancellation` is set.
    func performBlocking(_ url: String, headers: [String], cancellation: TransferCancellation) -> Result<Response, Failure> {
        func failure(_ message: String) -> Result<Response, Failure> { .failure(Failure(url: url, message: message)) }
        guard !cancellation.isCancelled else { return failure(TransferCancellation.message) }
        guard Self.globalInitialisation == CURLE_OK else { return failure("libcurl could not be initialised") }
        guard let handle = curl_easy_init() else { return failure("libcurl could not make a handle") }
        defer { curl_easy_cleanup(handle) }

        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        for line in headers {
            guard let appended = curl_slist_append(headerList, line) else { return failure("out of memory for headers") }
            headerList = appended
        }

        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }

        let sink = BodySink(limit: maximumBodySize)
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        let cancellationPointer = Unmanaged.passUnretained(cancellation).toOpaque()

        let settings: [CURLcode] = [
            nns_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer),
            nns_curl_setopt_string(handle, CURLOPT_URL, url),
            nns_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"),
            nns_curl_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"),
            nns_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0),
            nns_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(connectTimeout)),
            nns_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(timeout)),
            nns_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1),
            nns_curl_setopt_string(handle, CURLOPT_USERAGENT, userAgent),
            nns_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList)),
            nns_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer),
            nns_curl_setopt_write_function(handle) { data, size, count, context in
                guard let context else { return 0 }
                let sink = Unmanaged<BodySink>.fromOpaque(context).takeUnretainedValue()
                let length = size * count
                guard let data else { return length }
                // Returning less than `length` makes curl stop with CURLE_WRITE_ERROR.
                return sink.append(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
            },
            // Called while connecting and transferring, about once a second even when nothing moves;
            // non-zero makes curl stop with CURLE_ABORTED_BY_CALLBACK and close the connection.
            nns_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0),
            nns_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, cancellationPointer),
            nns_curl_setopt_xferinfo_function(handle) { context, _, _, _, _ in
                guard let context else { return 0 }
                return Unmanaged<TransferCancellation>.fromOpaque(context).takeUnretainedValue().isCancelled ? 1 : 0
            },
        ]
        if let bad = settings.first(where: { $0 != CURLE_OK }) {
            return failure("libcurl refused an option: \(Self.message(bad))")
        }

        let origin = Self.origin(of: url)
        var redirects = 0
        while true {
            sink.reset()
            let code = withExtendedLifetime((sink, cancellation)) { curl_easy_perform(handle) }
            if sink.overflowed { return failure("the response is larger than \(maximumBodySize) bytes") }
            if code == CURLE_ABORTED_BY_CALLBACK || cancellation.isCancelled { return failure(TransferCancellation.message) }
            guard code == CURLE_OK else {
                let detail = String(cString: errorBuffer)
                return failure(detail.isEmpty ? Self.message(code) : detail)
            }
            var status = 0
            guard nns_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK else {
                return failure("libcurl did not report a status")
            }
            var location: UnsafeMutablePointer<CChar>? = nil
            guard (300..<400).contains(status), nns_curl_getinfo_string(handle, CURLINFO_REDIRECT_URL, &location) == CURLE_OK,
                  let location
            else {
                return .success(Response(status: status, body: sink.bytes))
            }
            let next = String(cString: location)
            redirects += 1
            guard redirects <= maximumRedirects else { return failure("more than \(maximumRedirects) redirects") }
            guard origin != nil, Self.origin(of: next) == origin else {
                return failure("redirected to \(next), outside the Hydra the operator named")
            }
            guard nns_curl_setopt_string(handle, CURLOPT_URL, next) == CURLE_OK else { return failure("libcurl refused \(next)") }
        }
    }

    /// `scheme://host:port` of an absolute http(s) URL (the port made explicit), nil for anything else.
    static func origin(of url: String) -> String? {
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else { return nil }
        let scheme = url[..<colon].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[url.index(colon, offsetBy: 3)...]
        var authority = String(rest.prefix(while: { $0 != "/" && $0 != "?" && $0 != "#" })).lowercased()
        if let at = authority.lastIndex(of: "@") { authority = String(authority[authority.index(after: at)...]) }
        let hasPort = authority.hasPrefix("[") ? authority.contains("]:") : authority.contains(":")
        if !hasPort { authority += scheme == "http" ? ":80" : ":443" }
        return scheme + "://" + authority
    }

    private static func message(_ code: CURLcode) -> String {
        curl_easy_strerror(code).map { String(cString: $0) } ?? "curl error \(code.rawValue)"
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

/// Collects a response body for one transfer, on the transfer's thread only.
private final class BodySink {
    let limit: Int
    var bytes: [UInt8] = []
    var overflowed = false

    init(limit: Int) { self.limit = limit }

    /// Forgets the body of a previous response (a redirect's).
    func reset() {
        bytes.removeAll(keepingCapacity: true)
        overflowed = false
    }

    /// Appends a chunk; false (and `overflowed`) once the body would exceed the limit.
    func append(_ chunk: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count + chunk.count <= limit else {
            overflowed = true
            return false
        }
        bytes.append(contentsOf: chunk)
        return true
    }
}
