import ChatProtocol

/// What the services tell the real-time layer about changes made outside it (through the
/// REST API), so that open connections follow at once.
public protocol ChatEvents: Sendable {
    /// `user` joined the chat.
    func memberAdded(_ details: ChatDetails, user: UserID)
    /// `user` left the chat.
    func memberRemoved(chat: ChatID, user: UserID)
    /// The session token `tokenID` was revoked; connections opened with it must close.
    func sessionRevoked(tokenID: String)
    /// Every session of `user` ended (the password changed); all their connections must close.
    func sessionsEnded(of user: UserID)
}
