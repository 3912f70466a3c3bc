import Hummingbird
import NIOCore

/// The request context of every route. ``AuthMiddleware`` fills in ``session`` when the
/// request carries a valid token.
public struct ChatRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer of the connection: the client, or a proxy in front of the server.
    public let remoteAddress: SocketAddress?
    /// The caller's session, if the request was authenticated.
    public var session: Session?
    /// How the session's token arrived.
    public var credentialSource: CredentialSource?
    /// Set while a WebSocket handshake is evaluated: where `GET /ws` leaves the session to run.
    var upgrade: WebSocketUpgradeSlot?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

/// Where a request's token came from; browsers attach cookies to cross-site requests too, so
/// cookie-borne requests get origin checks.
public enum CredentialSource: Sendable {
    case bearerHeader
    case cookie
}

/// The context of routes that need a logged-in user: the session is always there.
public struct AuthenticatedContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let session: Session

    /// - Throws: ``ChatError/notAuthenticated`` when no session was established.
    public init(context: ChatRequestContext) throws {
        guard let session = context.session else { throw ChatError.notAuthenticated }
        self.coreContext = context.coreContext
        self.session = session
    }

    /// The logged-in user.
    public var user: User { session.user }
}
