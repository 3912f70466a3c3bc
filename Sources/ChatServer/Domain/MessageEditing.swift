import ChatProtocol

/// Edits and deletions of stored messages, with the rules that govern them: only a member of
/// the chat sees a message, only its sender edits it, and its sender or the creator of its
/// GROUP chat deletes it, leaving a tombstone in its place. Every change is stored under the
/// chat's next `update_seq`, then announced, so that every connection following the chat
/// gets the message as it is now (persist, then publish).
public struct MessageEditing: Sendable {
    let store: any ChatDirectory & MessageLog
    let rules: InputRules
    let events: (any ChatEvents)?

    public init(store: any ChatDirectory & MessageLog, rules: InputRules, events: (any ChatEvents)? = nil) {
        self.store = store
        self.rules = rules
        self.events = events
    }

    /// Replaces the text of `actor`'s message `id`.
    /// - Throws: ``ChatError/messageNotFound`` when `actor` cannot see it,
    ///   ``ChatError/notSender`` when `actor` did not send it, ``ChatError/messageDeleted`` when
    ///   it is a tombstone, and the text's errors as for a send.
    public func edit(_ id: MessageID, text: String, by actor: UserID) async throws -> HistoryItem {
        let (message, _) = try await visibleMessage(id, to: actor)
        guard message.senderID == actor else { throw ChatError.notSender }
        let text = try rules.messageText(text)
        guard !message.deleted, let edited = try await store.changeMessage(id, .edit(text: text)) else {
            throw ChatError.messageDeleted
        }
        events?.messagesUpdated(in: edited.chatID, upTo: edited.updateSeq)
        return try await withReadStatus(edited)
    }

    /// Deletes message `id` on behalf of `actor`, its sender or the creator of its GROUP chat.
    /// Deleting a deleted message changes nothing.
    /// - Returns: the tombstone.
    /// - Throws: ``ChatError/messageNotFound`` when `actor` cannot see it, ``ChatError/notSender``
    ///   when `actor` may not delete it.
    public func delete(_ id: MessageID, by actor: UserID) async throws -> HistoryItem {
        let (message, chat) = try await visibleMessage(id, to: actor)
        guard message.senderID == actor || (chat.type == .group && chat.creatorID == actor) else {
            throw ChatError.notSender
        }
        guard !message.deleted, let deleted = try await store.changeMessage(id, .delete) else {
            // Deleted before, or meanwhile: it is a tombstone either way.
            guard let current = try await store.message(id) else { throw ChatError.messageNotFound }
            return try await withReadStatus(current)
        }
        events?.messagesUpdated(in: deleted.chatID, upTo: deleted.updateSeq)
        return try await withReadStatus(deleted)
    }

    private func withReadStatus(_ message: Message) async throws -> HistoryItem {
        HistoryItem(message: message, isRead: ReadMarkers(try await store.members(of: message.chatID)).isRead(message))
    }

    /// The message and its chat, when `user` is a member of that chat.
    private func visibleMessage(_ id: MessageID, to user: UserID) async throws -> (Message, Chat) {
        guard let message = try await store.message(id),
            let chat = try await store.chat(message.chatID, member: user)
        else { throw ChatError.messageNotFound }
        return (message, chat)
    }
}
