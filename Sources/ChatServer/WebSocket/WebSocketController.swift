import ChatProtocol
import HTTPTypes
import Hummingbird
import Logging

/// `GET /ws`: accepts a WebSocket handshake from an authenticated user and runs a
/// ``ChatSession`` on the connection.
///
/// A refused handshake gets the API's usual error: 401 without a valid token, 403 when a
/// cookie-authenticated request comes from a foreign `Origin`, 404 for a `chat_id` the user is
/// not in, 429 over the per-user connection limit, 426 for a request that is not a handshake.
struct WebSocketController {
    let chats: ChatService
    let hub: ChatHub
    let sends: LiveSend
    let resumes: LiveResume
    let events: any ChatEvents
    let stopwatch: Stopwatch
    let generation: DatabaseGeneration
    /// Where the per-user cap is counted over all nodes; nil on SQLite, where the hub counts.
    let clusterConnections: ClusterConnections?
    let originPolicy: OriginPolicy
    let settings: WebSocketSettings
    let metrics: ChatMetrics
    let logger: Logger

    func addRoutes(to group: RouterGroup<ChatRequestContext>) {
        group.get("/ws", use: open)
    }

    @Sendable func open(request: Request, context: ChatRequestContext) async throws -> Response {
        guard let session = context.session else { throw ChatError.notAuthenticated }
        if context.credentialSource == .cookie {
            guard let origin = request.headers[.origin],
                originPolicy.isAllowed(origin: origin, host: request.head.authority)
            else { throw OriginPolicy.crossSite }
        }
        let narrowedTo = try Self.narrowedChat(request)
        guard Self.isHandshake(request) else {
            throw APIError(
                status: .upgradeRequired, code: .upgradeRequired, message: "Open this URL as a WebSocket.",
                headers: [.upgrade: "websocket"])
        }
        if let narrowedTo {
            _ = try await chats.details(of: narrowedTo, viewer: session.user.id)
        }
        // This node's count first, which costs nothing; then all nodes', which claims a place.
        guard hub.connections(of: session.user.id).count < settings.connectionsPerUser else {
            throw tooManyConnections()
        }
        var claim: ConnectionClaim?
        if let clusterConnections {
            claim = try await clusterConnections.claim(for: session.user.id)
            guard claim != nil else { throw tooManyConnections() }
        }
        guard let slot = context.upgrade else {
            // A handshake that is not a connection's first request cannot be upgraded: send the
            // client to open a new connection for it.
            claim?.release()
            return Response(
                status: .temporaryRedirect, headers: [.location: request.uri.description, .connection: "close"])
        }
        let chatSession = ChatSession(
            session: session, narrowedTo: narrowedTo, claim: claim, chats: chats, hub: hub, sends: sends,
            resumes: resumes, events: events, stopwatch: stopwatch, generation: generation.current, settings: settings,
            metrics: metrics, logger: logger)
        slot.accept(chatSession)
        return Response(status: .ok)
    }

    /// Counts and returns the refusal of a handshake past the per-user connection cap.
    private func tooManyConnections() -> APIError {
        metrics.connectionRefused(.userLimit)
        return APIError(
            status: .tooManyRequests, code: .tooManyConnections,
            message: "At most \(settings.connectionsPerUser) connections per user; close one first.")
    }

    private static func isHandshake(_ request: Request) -> Bool {
        request.headers[.upgrade]?.lowercased() == "websocket" && request.headers[.secWebSocketKey] != nil
    }

    /// The chat a `?chat_id=` narrows the connection to.
    private static func narrowedChat(_ request: Request) throws -> ChatID? {
        guard let text = request.uri.queryParameters.get("chat_id") else { return nil }
        guard let id = Int64(text) else { throw ChatError.invalidField("chat_id", "must be an integer") }
        return ChatID(id)
    }
}
