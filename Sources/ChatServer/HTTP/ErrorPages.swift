import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The error pages people see. A request that prefers HTML (a browser opening an address)
/// gets a styled page (`web/error.html`) for an error instead of the API's JSON; API clients,
/// curl and the web client's own `fetch` calls, which ask for JSON or anything, still get JSON.
struct ErrorPages: Sendable {
    private let template: String

    init(assets: WebAssets) {
        template = assets["error.html"].map { String(buffer: $0.body) } ?? ""
    }

    /// Whether the request's `Accept` ranks `text/html` above `application/json` (RFC 9110
    /// §12.5.1). A browser's navigation lists `text/html` first; `*/*` alone is not a preference.
    static func prefersHTML(_ request: Request) -> Bool {
        guard let accept = request.headers[.accept] else { return false }
        var html = 0.0
        var json = 0.0
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            let quality = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            switch parts.first {
            case "text/html": html = max(html, quality)
            case "application/json": json = max(json, quality)
            default: break
            }
        }
        return html > 0 && html > json
    }

    /// `error` as a page, with its status and headers.
    func response(for error: APIError) -> Response {
        var headers = error.headers
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] = ContentSecurityPolicy.webClient
        return Response(
            status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html(for: error))))
    }

    /// The page's HTML: a title a person understands, the API's message (as text), the status.
    func html(for error: APIError) -> String {
        let (title, message) = Self.wording(for: error)
        return template.replacingOccurrences(of: "{{title}}", with: title.htmlEscaped)
            .replacingOccurrences(of: "{{message}}", with: message.htmlEscaped)
            .replacingOccurrences(of: "{{status}}", with: "\(error.status.code)")
    }

    private static func wording(for error: APIError) -> (title: String, message: String) {
        switch error.status {
        case .notFound where error.code == ChatError.chatNotFound.code:
            ("Chat not found", "This chat does not exist, or you are not one of its members.")
        case .notFound:
            (
                "Page not found",
                "There is nothing at this address. The link may be mistyped, or the page may have moved."
            )
        case .methodNotAllowed: ("Not available", "This address does not answer that kind of request.")
        case .unauthorized: ("Please log in", error.message)
        case .forbidden: ("Not allowed", error.message)
        case .tooManyRequests: ("Too many attempts", error.message)
        case .serviceUnavailable: ("The server is busy", error.message)
        case .internalServerError: ("Something went wrong", error.message)
        default: (error.status.reasonPhrase, error.message)
        }
    }
}
