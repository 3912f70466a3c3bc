/// Every code the server closes a WebSocket with: the one list clients act on. docs/errors.md
/// is generated from it, and a test holds docs/protocol.md's table to it.
public enum CloseCode: UInt16, CaseIterable, Sendable {
    case normalClosure = 1000
    /// The server is shutting down, or the client did not answer a ping.
    case goingAway = 1001
    case protocolError = 1002
    case invalidText = 1007
    /// The session ended: logout, password change, or the token expired.
    case sessionEnded = 1008
    case messageTooBig = 1009
    case internalError = 1011
    /// Busy: over the per-user connection limit, or the database was busy while the
    /// connection was set up.
    case tryAgainLater = 1013
    /// Too slow a reader: more frames waited for the connection than its outbox holds.
    case slowConsumer = 4001

    /// What it means.
    public var meaning: String {
        switch self {
        case .normalClosure: "Normal closure (the client's own, answered)."
        case .goingAway: "The server is shutting down, or the client did not answer a ping (`ping timeout`)."
        case .protocolError: "A protocol error: bad framing, or an unmasked client frame."
        case .invalidText: "A text frame was not valid UTF-8."
        case .sessionEnded:
            "The session ended: logged out, the password changed, or the token expired (reason `session expired`)."
        case .messageTooBig: "A message was larger than `CHAT_WS_MAX_FRAME_BYTES` (64 KiB)."
        case .internalError: "An unexpected server error."
        case .tryAgainLater:
            "Busy: over the per-user connection limit (two connections raced past the 429 check), "
                + "or the database was busy or unavailable while the connection was set up."
        case .slowConsumer:
            "Too slow: more than `CHAT_WS_OUTBOX_FRAMES` (1024) frames or `CHAT_WS_OUTBOX_BYTES` (4 MiB) "
                + "were waiting for this connection."
        }
    }

    /// What a client does about it.
    public var remedy: String {
        switch self {
        case .normalClosure: "Nothing."
        case .goingAway, .internalError: "Reconnect with backoff, then `resume`."
        case .protocolError, .invalidText: "Fix the client."
        case .sessionEnded: "Log in again."
        case .messageTooBig: "Send less."
        case .tryAgainLater: "Close another connection, or reconnect with backoff."
        case .slowConsumer: "Reconnect and `resume`; read faster."
        }
    }
}
