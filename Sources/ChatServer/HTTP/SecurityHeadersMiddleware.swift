import HTTPTypes
import Hummingbird

private let referrerPolicy = HTTPField.Name("Referrer-Policy")!

/// Adds to every response the headers that keep browsers from sniffing its type, framing it
/// or leaking its address to other sites. A response without a `Content-Security-Policy`
/// gets ``ContentSecurityPolicy/none``; pages set their own.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[referrerPolicy] = "same-origin"
        if response.headers[.contentSecurityPolicy] == nil {
            response.headers[.contentSecurityPolicy] = ContentSecurityPolicy.none
        }
        return response
    }
}

/// The `Content-Security-Policy` values the server sends. None allows inline scripts, and
/// none lets another site frame the server's pages.
enum ContentSecurityPolicy {
    /// For responses that are not pages (JSON, metrics): nothing may load, nothing may frame.
    static let none = "default-src 'none'; frame-ancestors 'none'"

    /// The web client: its own scripts, styles and API (WebSocket included) only.
    static let webClient = [
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        "connect-src 'self'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ].joined(separator: "; ")
}
