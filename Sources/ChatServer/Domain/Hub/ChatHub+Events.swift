import ChatProtocol

/// The hub as the events sink of a single node (with several, ``ClusterLink`` is, and calls the hub).
extension ChatHub: ChatEvents {
    public func markedRead(chat: ChatID, user: UserID, seq: Int64) {
        broadcast(.read(chatID: chat, userID: user, seq: seq), to: chat)
    }

    public func typing(chat: ChatID, user: UserID) {
        broadcast(.typing(chatID: chat, userID: user), to: chat, excludingUser: user)
    }

    public func presenceChanged(of user: UserID, online: Bool, chats: Set<ChatID>) {
        announcePresence(of: user, online: online, chats: chats)
    }

    /// Closes the revoked session's connections with 1008 (policy violation).
    public func sessionRevoked(tokenID: String) {
        closeConnections(tokenID: tokenID, code: .sessionEnded, reason: "session ended")
    }

    public func sessionsEnded(of user: UserID) {
        for connection in connections(of: user) {
            connection.outbox.close(.closing(code: .sessionEnded, reason: "session ended"))
        }
    }
}
