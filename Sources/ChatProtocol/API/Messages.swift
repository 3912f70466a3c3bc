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
    @ISOTimestamp public var timestamp: Date
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
