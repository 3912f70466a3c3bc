import ChatProtocol

/// Each chat's messages under gap-free `seq`s, stored duplicate-free by `(sender, client_id)`.
public protocol MessageLog: Sendable {
    /// Stores messages to one chat (the first one's) in one transaction, in order, under its next
    /// `seq`s, and moves each sender's read marker to their last one. A repeated
    /// `(sender, client_id)` yields the original with `duplicate: true`, writes nothing and
    /// consumes no `seq`; a sender who is not a member yields ``ChatError/notAMember``.
    /// The `(sender, client_id)` pairs must be distinct within one call.
    /// - Returns: one result per message, in order.
    /// - Throws: when storing failed. Some of the messages may have been stored by then;
    ///   retrying with the same client ids is safe.
    func appendMessages(_ messages: [NewMessage]) async throws -> [Result<AppendedMessage, ChatError>]
    /// Applies `change` to message `id` under its chat's next `update_seq` (an edit also sets
    /// `edited_at`; a deletion empties the text), unless the message is deleted.
    /// - Returns: the message as it is now, or nil when there is no such message or it is
    ///   deleted: nothing changed.
    func changeMessage(_ id: MessageID, _ change: MessageChange) async throws -> Message?
    /// The messages of `chat` changed after `afterUpdate`, at most `limit`, in `update_seq` order.
    func updatedMessages(in chat: ChatID, after afterUpdate: Int64, limit: Int) async throws -> [Message]
    /// The message `id`, whatever its chat.
    func message(_ id: MessageID) async throws -> Message?
    /// The chat of each of the messages `ids` that exists.
    func chats(ofMessages ids: Set<MessageID>) async throws -> [MessageID: ChatID]
    /// Full-text search: the messages, deleted ones left out, of `scope` whose text has every
    /// one of `words` (as the database's index understands words), newest first (by id),
    /// before message `before` when given, at most `limit`.
    /// - Returns: each message with a snippet of its text in which ``SearchHit/markStart`` and
    ///   ``SearchHit/markEnd`` enclose the matched words.
    func searchMessages(
        _ words: [String], in scope: SearchScope, before: MessageID?, limit: Int
    ) async throws -> [SearchHit]
    /// A page of a chat's messages in `seq` order.
    func messages(in chat: ChatID, _ query: HistoryQuery) async throws -> [Message]
    /// A page of a chat's messages in `seq` order, with the chat's members: who may read it,
    /// and their read markers. What `GET /history` reads.
    func historyPage(
        in chat: ChatID, _ query: HistoryQuery
    ) async throws -> (messages: [Message], members: [ChatMember])
    /// The messages after `afterSeq` (at most `limit`, in `seq` order) and the chat's members
    /// as of no earlier than the newest of them: a member removed before one of these messages
    /// was stored is not among the members. What the hub reads to fill a gap.
    func messagesAndMembers(
        in chat: ChatID, after afterSeq: Int64, limit: Int
    ) async throws -> (messages: [Message], members: Set<UserID>)
}

extension MessageLog {
    /// Stores one message: ``appendMessages(_:)`` with a batch of one.
    /// - Throws: ``ChatError/notAMember`` when the sender is not a member.
    public func appendMessage(_ message: NewMessage) async throws -> AppendedMessage {
        guard let result = try await appendMessages([message]).first else {
            throw StorageError.unexpected("appendMessages returned no result")
        }
        return try result.get()
    }
}

extension MessageLog where Self: ChatDirectory {
    /// The page and the members read at once: one round trip of latency instead of two.
    public func historyPage(
        in chat: ChatID, _ query: HistoryQuery
    ) async throws -> (messages: [Message], members: [ChatMember]) {
        async let page = messages(in: chat, query)
        let members = try await members(of: chat)
        return (try await page, members)
    }

    /// Two reads, the members after the messages.
    public func messagesAndMembers(
        in chat: ChatID, after afterSeq: Int64, limit: Int
    ) async throws -> (messages: [Message], members: Set<UserID>) {
        let messages = try await self.messages(in: chat, .after(seq: afterSeq, limit: limit))
        return (messages, Set(try await members(of: chat).map(\.userID)))
    }
}
