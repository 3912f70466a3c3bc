import Hummingbird
import Logging

/// Turns every error a route throws into the API's JSON error shape. Unknown errors become a
/// generic 500 whose details go only to the log, tagged with the request id.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as ChatError {
            return try APIError(error).response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            return try APIError(status: error.status).response(from: request, context: context)
        } catch {
            context.logger.error(
                "Request failed",
                metadata: [
                    "error": "\(String(reflecting: error))", "http.method": "\(request.method)",
                    "http.path": "\(request.uri.path)",
                ])
            return try APIError.unexpected.response(from: request, context: context)
        }
    }
}
