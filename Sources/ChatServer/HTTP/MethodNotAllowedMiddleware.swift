import ChatProtocol
import HTTPTypes
import Hummingbird
import Synchronization

/// The methods each routed path takes, learned from the router once its routes are added.
final class RouteMethods: Sendable {
    private let routes = Mutex<[(path: RouterPath, methods: [HTTPRequest.Method])]>([])

    func learn(_ descriptions: [Router<ChatRequestContext>.RouteDescription]) {
        let byPath = Dictionary(grouping: descriptions, by: \.path.description).values
        routes.withLock { routes in
            routes = byPath.map { ($0[0].path, $0.map(\.method).sorted { $0.rawValue < $1.rawValue }) }
        }
    }

    /// The methods a path matching `path` takes; nil when no route's path matches.
    func methods(for path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        return routes.withLock { routes in
            routes.first { route in
                route.path.components.count == segments.count
                    && zip(route.path.components, segments).allSatisfy { $0 ~= $1 }
            }?.methods
        }
    }
}

/// Answers a method that a routed path does not take with 405 and an `Allow` header naming
/// those it does, where the router alone would say 404, as if the path did not exist.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteMethods

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let allowed = routes.methods(for: request.uri.path), !allowed.contains(request.method) else {
                throw error
            }
            throw APIError(
                status: .methodNotAllowed, code: .methodNotAllowed, message: "This path does not take that method.",
                headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")])
        }
    }
}
