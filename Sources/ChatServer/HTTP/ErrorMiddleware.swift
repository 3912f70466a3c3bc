import Hummingbird
import Logging

/// Turns every error a route throws into the API's JSON error shape, or into an error page
/// for a request that prefers HTML (``ErrorPages``). Unknown errors become a generic 500
/// whose details go only to the log, tagged with the request id.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let pages: ErrorPages

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        let error: APIError
        do {
            return try await next(request, context)
        } catch let thrown as APIError {
            error = thrown
        } catch let thrown as ChatError {
            error = APIError(thrown)
        } catch let thrown as any HTTPResponseError {
            error = APIError(status: thrown.status)
        } catch {
            context.logger.error(
                "Request failed",
                metadata: [
                    "error": "\(String(reflecting: error))", "http.method": "\(request.method)",
                    "http.path": "\(request.uri.path)",
                ])
            return try respond(with: .unexpected, to: request, context: context)
        }
        return try respond(with: error, to: request, context: context)
    }

    private func respond(with error: APIError, to request: Request, context: Context) throws -> Response {
        if ErrorPages.prefersHTML(request) { return pages.response(for: error) }
        return try error.response(from: request, context: context)
    }
}
