import HTTPTypes
import Hummingbird
import Logging

/// Gives every response an `X-Request-ID` (the id in every log line of the request), logs one
/// access line, and counts the request by route and status. Runs outside the error middleware,
/// so it sees the status that was sent.
struct RequestObservationMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ChatMetrics

    static var requestIDHeader: HTTPField.Name { HTTPField.Name("X-Request-ID")! }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        let started = ContinuousClock.now
        var response = try await next(request, context)
        response.headers[Self.requestIDHeader] = context.id
        // The route template, not the path: ids in paths would make every chat its own series.
        let route = context.endpointPath ?? "NotFound"
        metrics.requestHandled(route: route, status: response.status.code)
        context.logger.info(
            "\(request.method) \(route) \(response.status.code)",
            metadata: ["http.duration_ms": "\((ContinuousClock.now - started).milliseconds)"])
        return response
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
