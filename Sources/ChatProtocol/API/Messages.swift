import Foundation

/// A stored message, as history and live delivery show it.
public struct MessagePayload: Sendable, Equatable {
    public var id: MessageID
    public var chatID: ChatID
    /// Position in the chat: 1, 2, 3, ... with no gaps. This is the order of the chat.
    public var seq: Int64
    public var senderID: UserID
    /// The sender's own id for the message, which makes retried sends duplicate-free.
    public var clientID: String?
    /// The current text; "" once deleted.
    public var text: String
    /// When the server stored the message (informational; `seq` is the order).
    public var timestamp: Date
    /// Private chat: the other member has read it. Group: every member but the sender has.
    public var isRead: Bool
    /// The message of the same chat this one answers; null when it is no reply.
    public var replyTo: MessageID?
    /// When the text last changed; null for a message never edited.
    public var editedAt: Date?
    /// A deleted message stays in its place as a tombstone with `"text": ""`.
    public var deleted: Bool
    /// The chat's counter of edits and deletions when this message last changed, 0 when it
    /// never did: of two states of one message, the higher `update_seq` is the newer.
    public var updateSeq: Int64

    public init(
        id: MessageID, chatID: ChatID, seq: Int64, senderID: UserID, clientID: String?, text: String,
        timestamp: Date, isRead: Bool, replyTo: MessageID? = nil, editedAt: Date? = nil, deleted: Bool = false,
        updateSeq: Int64 = 0
    ) {
        self.id = id
        self.chatID = chatID
        self.seq = seq
        self.senderID = senderID
        self.clientID = clientID
        self.text = text
        self.timestamp = timestamp
        self.isRead = isRead
        self.replyTo = replyTo
        self.editedAt = editedAt
        self.deleted = deleted
        self.updateSeq = updateSeq
    }
}

extension MessagePayload: Codable {
    enum CodingKeys: String, CodingKey {
        case id, seq, text, timestamp, deleted
        case chatID = "chat_id"
        case senderID = "sender_id"
        case clientID = "client_id"
        case isRead = "is_read"
        case replyTo = "reply_to"
        case editedAt = "edited_at"
        case updateSeq = "update_seq"
    }

    /// Reads messages of servers older than 0.3, which have no replies, edits or deletions.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(MessageID.self, forKey: .id),
            chatID: try container.decode(ChatID.self, forKey: .chatID),
            seq: try container.decode(Int64.self, forKey: .seq),
            senderID: try container.decode(UserID.self, forKey: .senderID),
            clientID: try container.decodeIfPresent(String.self, forKey: .clientID),
            text: try container.decode(String.self, forKey: .text),
            timestamp: try container.decode(ISOTimestamp.self, forKey: .timestamp).wrappedValue,
            isRead: try container.decode(Bool.self, forKey: .isRead),
            replyTo: try container.decodeIfPresent(MessageID.self, forKey: .replyTo),
            editedAt: try container.decodeIfPresent(ISOTimestamp.self, forKey: .editedAt)?.wrappedValue,
            deleted: try container.decodeIfPresent(Bool.self, forKey: .deleted) ?? false,
            updateSeq: try container.decodeIfPresent(Int64.self, forKey: .updateSeq) ?? 0)
    }

    /// Writes `reply_to` and `edited_at` as null when absent, and leaves out an absent `client_id`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(chatID, forKey: .chatID)
        try container.encode(seq, forKey: .seq)
        try container.encode(senderID, forKey: .senderID)
        try container.encodeIfPresent(clientID, forKey: .clientID)
        try container.encode(text, forKey: .text)
        try container.encode(ISOTimestamp(wrappedValue: timestamp), forKey: .timestamp)
        try container.encode(isRead, forKey: .isRead)
        try container.encode(replyTo, forKey: .replyTo)
        try container.encode(editedAt.map(ISOTimestamp.init(wrappedValue:)), forKey: .editedAt)
        try container.encode(deleted, forKey: .deleted)
        try container.encode(updateSeq, forKey: .updateSeq)
    }
}

extension MessagePayload: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writeFields(to: &writer)
        writer.raw("}")
    }

    /// The object's opening brace and fields, in the order of `encode(to:)`, without the
    /// closing brace (a search hit adds its `snippet`).
    func writeFields(to writer: inout JSONWriter) {
        writer.raw(#"{"id":"#)
        writer.integer(id.rawValue)
        writer.raw(#","chat_id":"#)
        writer.integer(chatID.rawValue)
        writer.raw(#","seq":"#)
        writer.integer(seq)
        writer.raw(#","sender_id":"#)
        writer.integer(senderID.rawValue)
        if let clientID {
            writer.raw(#","client_id":"#)
            writer.string(clientID)
        }
        writer.raw(#","text":"#)
        writer.string(text)
        writer.raw(#","timestamp":"#)
        writer.timestamp(timestamp)
        writer.raw(#","is_read":"#)
        writer.bool(isRead)
        writer.raw(#","reply_to":"#)
        if let replyTo { writer.integer(replyTo.rawValue) } else { writer.null() }
        writer.raw(#","edited_at":"#)
        if let editedAt { writer.timestamp(editedAt) } else { writer.null() }
        writer.raw(#","deleted":"#)
        writer.bool(deleted)
        writer.raw(#","update_seq":"#)
        writer.integer(updateSeq)
    }
}

/// The one error shape of the API: `{"error": {"code": "...", "message": "..."}}`.
public struct ErrorPayload: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        /// Stable, machine-readable code such as `chat_not_found`.
        public var code: String
        /// Human-readable explanation, safe to show to a user.
        public var message: String

        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    public var error: Detail

    public init(code: String, message: String) {
        self.error = Detail(code: code, message: message)
    }
}

/// A message found by `GET /search`: the message JSON with a `snippet`.
public struct SearchHitPayload: Sendable, Equatable {
    public var message: MessagePayload
    /// The text around the matched words, HTML-escaped, with each matched word in `<mark>`.
    public var snippet: String

    public init(message: MessagePayload, snippet: String) {
        self.message = message
        self.snippet = snippet
    }
}

extension SearchHitPayload: Codable {
    enum CodingKeys: String, CodingKey {
        case snippet
    }

    public init(from decoder: any Decoder) throws {
        self.init(
            message: try MessagePayload(from: decoder),
            snippet: try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .snippet))
    }

    public func encode(to encoder: any Encoder) throws {
        try message.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(snippet, forKey: .snippet)
    }
}

extension SearchHitPayload: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        message.writeFields(to: &writer)
        writer.raw(#","snippet":"#)
        writer.string(snippet)
        writer.raw("}")
    }
}

/// Response of `GET /search`: results newest first, and the cursor of the next page.
public struct SearchResultsPayload: Sendable, Equatable {
    public var messages: [SearchHitPayload]
    /// `before` for the next page; null on the last one.
    public var next: MessageID?

    public init(messages: [SearchHitPayload], next: MessageID?) {
        self.messages = messages
        self.next = next
    }
}

extension SearchResultsPayload: Codable {
    enum CodingKeys: String, CodingKey {
        case messages, next
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            messages: try container.decode([SearchHitPayload].self, forKey: .messages),
            next: try container.decodeIfPresent(MessageID.self, forKey: .next))
    }

    /// Writes `next` as null on the last page.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(messages, forKey: .messages)
        try container.encode(next, forKey: .next)
    }
}

extension SearchResultsPayload: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writer.raw(#"{"messages":"#)
        writer.array(messages)
        writer.raw(#","next":"#)
        if let next { writer.integer(next.rawValue) } else { writer.null() }
        writer.raw("}")
    }
}

/// Body of `PATCH /messages/{message_id}`: the message's new text.
public struct EditMessageRequest: Codable, Sendable, Equatable {
    public var text: String

    public init(text: String) {
        self.text = text
    }
}
