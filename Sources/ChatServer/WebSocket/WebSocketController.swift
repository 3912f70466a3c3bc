import ChatProtocol
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging

/// `GET /ws`: upgrades an authenticated request to a WebSocket and runs a ``ChatSession``.
///
/// The upgrade is refused before it happens, with the API's usual error bodies: 401 without
/// a valid token, 403 when a cookie-authenticated request comes from a foreign `Origin`, 404
/// for a `chat_id` the user is not in, 429 over the per-user connection limit, 426 for a
/// request that is not a WebSocket handshake.
struct WebSocketController {
    let chats: ChatService
    let hub: ChatHub
    let originPolicy: OriginPolicy
    let settings: WebSocketSettings
    let logger: Logger

    func addRoutes(to group: RouterGroup<ChatRequestContext>) {
        group.ws("/ws", shouldUpgrade: shouldUpgrade) { inbound, outbound, context in
            guard let session = context.requestContext.session else { return }
            let chatSession = ChatSession(
                session: session, narrowedTo: try? Self.narrowedChat(context.request), chats: chats, hub: hub,
                settings: settings, logger: logger)
            try await chatSession.run(inbound: inbound, outbound: outbound)
        }
    }

    @Sendable func shouldUpgrade(_ request: Request, context: ChatRequestContext) async throws -> RouterShouldUpgrade {
        guard let session = context.session else { throw ChatError.notAuthenticated }
        if context.credentialSource == .cookie {
            guard let origin = request.headers[.origin],
                originPolicy.isAllowed(origin: origin, host: request.head.authority)
            else { throw OriginPolicy.crossSite }
        }
        guard request.headers[.upgrade]?.lowercased() == "websocket" else {
            throw APIError(
                status: .upgradeRequired, code: "upgrade_required", message: "Open this URL as a WebSocket.",
                headers: [.upgrade: "websocket"])
        }
        if let chat = try Self.narrowedChat(request) {
            _ = try await chats.details(of: chat, viewer: session.user.id)
        }
        guard hub.connections(of: session.user.id).count < settings.connectionsPerUser else {
            throw APIError(
                status: .tooManyRequests, code: "too_many_connections",
                message: "At most \(settings.connectionsPerUser) connections per user; close one first.")
        }
        return .upgrade([:])
    }

    /// The chat a `?chat_id=` narrows the connection to.
    private static func narrowedChat(_ request: Request) throws -> ChatID? {
        guard let text = request.uri.queryParameters.get("chat_id") else { return nil }
        guard let id = Int64(text) else { throw ChatError.invalidField("chat_id", "must be an integer") }
        return ChatID(id)
    }
}
