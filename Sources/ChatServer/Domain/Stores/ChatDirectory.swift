import ChatProtocol

/// Chats, their members, membership events and read markers. A PRIVATE chat never holds more
/// than two members, also when adds race.
public protocol ChatDirectory: Sendable {
    /// Creates a chat and its group with `creator` as creator and first member.
    func createChat(name: String, type: ChatType, creator: UserID) async throws -> Chat
    /// The chat, if `member` is one of its members.
    func chat(_ id: ChatID, member: UserID) async throws -> Chat?
    /// The chat's members, by name.
    func members(of chat: ChatID) async throws -> [ChatMember]
    /// Adds a member whose read marker starts at the chat's current end, and records it as a
    /// ``MembershipEvent`` by `actor` in the same transaction. Throws
    /// ``ChatError/chatNotFound``, ``ChatError/userNotFound``, ``ChatError/alreadyMember``,
    /// or ``ChatError/privateChatFull`` (also when adds race: a PRIVATE chat never holds 3).
    func addMember(_ user: UserID, to chat: ChatID, by actor: UserID?) async throws
    /// Removes a member and records it as a ``MembershipEvent`` by `actor` in the same
    /// transaction. Throws ``ChatError/notAMember`` when `user` is not one.
    func removeMember(_ user: UserID, from chat: ChatID, by actor: UserID?) async throws
    /// `user` leaves the chat: their membership ends, recorded as a ``MembershipEvent`` with
    /// themselves as the actor. When they were its creator and members remain, the member who
    /// joined earliest becomes the creator, in the same transaction.
    /// - Returns: the new creator, or nil when the creator did not change.
    /// - Throws: ``ChatError/chatNotFound`` when `user` is not a member.
    func leaveChat(_ user: UserID, chat: ChatID) async throws -> UserID?
    /// The chat's membership events that come after messages `afterSeqs` (0: before the
    /// first message), in the order they happened, at most `limit`.
    func membershipEvents(
        in chat: ChatID, afterSeqs: ClosedRange<Int64>, limit: Int
    ) async throws
        -> [MembershipEvent]
    /// The chats `user` belongs to, newest activity first.
    func chatSummaries(for user: UserID) async throws -> [ChatSummary]
    /// The chats `user` belongs to with their members, by chat id.
    func chatDetails(for user: UserID) async throws -> [ChatDetails]
    /// Moves `user`'s read marker in `chat` forward to `seq`, or to the chat's last `seq` if
    /// that is lower. Never moves it back.
    /// - Returns: the new marker, or nil when it did not move.
    /// - Throws: ``ChatError/notAMember`` when `user` is not a member.
    func advanceReadMarker(of user: UserID, in chat: ChatID, to seq: Int64) async throws -> Int64?
}

extension ChatDirectory {
    /// Adds a member on no member's behalf (tests, tools): ``addMember(_:to:by:)``.
    public func addMember(_ user: UserID, to chat: ChatID) async throws {
        try await addMember(user, to: chat, by: nil)
    }

    /// Removes a member on no member's behalf (tests, tools): ``removeMember(_:from:by:)``.
    public func removeMember(_ user: UserID, from chat: ChatID) async throws {
        try await removeMember(user, from: chat, by: nil)
    }
}
