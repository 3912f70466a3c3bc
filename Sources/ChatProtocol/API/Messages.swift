import Foundation

/// A stored message, as history and live delivery show it.
public struct MessagePayload: Codable, Sendable, Equatable {
    public var id: MessageID
    public var chatID: ChatID
    /// Position in the chat: 1, 2, 3, ... with no gaps. This is the order of the chat.
    public var seq: Int64
    public var senderID: UserID
    /// The sender's own id for the message, which makes retried sends duplicate-free.
    public var clientID: String?
    public var text: String
    /// When the server stored the message (informational; `seq` is the order).
    public var timestamp: Date
    /// Private chat: the other member has read it. Group: every member but the sender has.
    public var isRead: Bool

    public init(
        id: MessageID, chatID: ChatID, seq: Int64, senderID: UserID, clientID: String?, text: String,
        timestamp: Date, isRead: Bool
    ) {
        self.id = id
        self.chatID = chatID
        self.seq = seq
        self.senderID = senderID
        self.clientID = clientID
        self.text = text
        self.timestamp = timestamp
        self.isRead = isRead
    }

    enum CodingKeys: String, CodingKey {
        case id, seq, text, timestamp
        case chatID = "chat_id"
        case senderID = "sender_id"
        case clientID = "client_id"
        case isRead = "is_read"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(MessageID.self, forKey: .id)
        chatID = try container.decode(ChatID.self, forKey: .chatID)
        seq = try container.decode(Int64.self, forKey: .seq)
        senderID = try container.decode(UserID.self, forKey: .senderID)
        clientID = try container.decodeIfPresent(String.self, forKey: .clientID)
        text = try container.decode(String.self, forKey: .text)
        timestamp = try container.decodeTimestamp(forKey: .timestamp)
        isRead = try container.decode(Bool.self, forKey: .isRead)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(chatID, forKey: .chatID)
        try container.encode(seq, forKey: .seq)
        try container.encode(senderID, forKey: .senderID)
        try container.encode(clientID, forKey: .clientID)
        try container.encode(text, forKey: .text)
        try container.encodeTimestamp(timestamp, forKey: .timestamp)
        try container.encode(isRead, forKey: .isRead)
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
