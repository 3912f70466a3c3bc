import ChatProtocol

/// What open connections must hear of, as the services and WebSocket sessions report it.
/// ``ChatHub`` tells the connections on this node; ``ClusterLink`` tells them and the other
/// nodes sharing the database.
public protocol ChatEvents: Sendable {
    /// `user` joined the chat.
    func memberAdded(_ details: ChatDetails, user: UserID)
    /// `user` left the chat or was removed; `newCreator` when the creator left and another
    /// member became the creator.
    func memberRemoved(chat: ChatID, user: UserID, newCreator: UserID?)
    /// `user` moved their read marker in `chat` to `seq`.
    func markedRead(chat: ChatID, user: UserID, seq: Int64)
    /// Messages of `chat` were edited or deleted, up to `updateSeq`: the connections following
    /// it read and get them (``ChatHub/messagesUpdated(in:upTo:)``).
    func messagesUpdated(in chat: ChatID, upTo updateSeq: Int64)
    /// `user` is typing in `chat`.
    func typing(chat: ChatID, user: UserID)
    /// `user`'s first connection on this node opened (`online`), or their last one closed;
    /// `chats` are the chats it follows.
    func presenceChanged(of user: UserID, online: Bool, chats: Set<ChatID>)
    /// The session token `tokenID` was revoked; connections opened with it must close.
    func sessionRevoked(tokenID: String)
    /// Every session of `user` ended (the password changed); all their connections must close.
    func sessionsEnded(of user: UserID)
}

extension ChatEvents {
    /// `user` was removed from the chat: ``memberRemoved(chat:user:newCreator:)`` without a
    /// change of creator.
    public func memberRemoved(chat: ChatID, user: UserID) {
        memberRemoved(chat: chat, user: user, newCreator: nil)
    }
}
