import ChatProtocol
import Foundation

/// A stored message.
public struct Message: Sendable, Equatable {
    public let id: MessageID
    public let chatID: ChatID
    /// Gap-free position in the chat, assigned in the transaction that stored the message.
    public let seq: Int64
    public let senderID: UserID
    /// The sender's id for the message; `(senderID, clientID)` is unique forever.
    public let clientID: String?
    /// The current text: "" once deleted.
    public let text: String
    public let createdAt: Date
    /// The message of the same chat this one answers.
    public let replyTo: MessageID?
    /// When the text last changed; nil for a message never edited.
    public let editedAt: Date?
    /// A deleted message is a tombstone: it keeps its place (`seq`) and loses its text.
    public let deleted: Bool
    /// The chat's `update_seq` of the last edit or deletion of this message, 0 when none: of
    /// two states of one message, the one with the higher `updateSeq` is newer.
    public let updateSeq: Int64

    public init(
        id: MessageID, chatID: ChatID, seq: Int64, senderID: UserID, clientID: String?, text: String, createdAt: Date,
        replyTo: MessageID? = nil, editedAt: Date? = nil, deleted: Bool = false, updateSeq: Int64 = 0
    ) {
        self.id = id
        self.chatID = chatID
        self.seq = seq
        self.senderID = senderID
        self.clientID = clientID
        self.text = text
        self.createdAt = createdAt
        self.replyTo = replyTo
        self.editedAt = editedAt
        self.deleted = deleted
        self.updateSeq = updateSeq
    }
}

/// A change to a stored message, by a member of its chat.
public enum MessageChange: Sendable, Equatable {
    /// The sender replaces the text (already validated).
    case edit(text: String)
    /// The sender, or the creator of a GROUP chat, takes the message back.
    case delete
}

/// A message to store. Text and client id are already validated.
public struct NewMessage: Sendable, Equatable {
    public let chatID: ChatID
    public let senderID: UserID
    public let clientID: String?
    public let text: String
    /// The message it answers; the caller checked that it is in the same chat.
    public let replyTo: MessageID?

    public init(chatID: ChatID, senderID: UserID, clientID: String?, text: String, replyTo: MessageID? = nil) {
        self.chatID = chatID
        self.senderID = senderID
        self.clientID = clientID
        self.text = text
        self.replyTo = replyTo
    }
}

/// The outcome of storing a message.
public struct AppendedMessage: Sendable, Equatable {
    /// The stored message: the new one, or the original when `duplicate` is true.
    public let message: Message
    /// True when `(sender, client_id)` was already stored: nothing new was written and no
    /// `seq` was consumed.
    public let duplicate: Bool

    public init(message: Message, duplicate: Bool) {
        self.message = message
        self.duplicate = duplicate
    }
}

/// A message with its read status, as history shows it.
public struct HistoryItem: Sendable, Equatable {
    public let message: Message
    public let isRead: Bool

    public init(message: Message, isRead: Bool) {
        self.message = message
        self.isRead = isRead
    }
}

/// Which part of a chat's history to read. Every form is a range on the `(chat_id, seq)`
/// index, so a deep page costs the same as the first.
public enum HistoryQuery: Sendable, Equatable {
    /// The original API's paging: skip `offset` messages from the start (messages with
    /// `seq <= offset`), then take up to `limit`.
    case offset(Int64, limit: Int)
    /// Up to `limit` messages just before `seq`, oldest first.
    case before(seq: Int64, limit: Int)
    /// Up to `limit` messages just after `seq`, oldest first.
    case after(seq: Int64, limit: Int)
}
