/// A frame a client sends over the WebSocket: a JSON object whose `type` says which.
public enum ClientFrame: Sendable, Equatable {
    /// Store a message. `client_id` makes retries duplicate-free; `reply_to` names the message
    /// of the same chat it answers.
    case send(chatID: ChatID, clientID: String, text: String, replyTo: MessageID? = nil)
    /// Move the sender's read marker forward to `seq`.
    case read(chatID: ChatID, seq: Int64)
    /// Tell the chat the sender is typing.
    case typing(chatID: ChatID)
    /// Receive, as `message` frames in order, what came after `after_seq`; live delivery
    /// continues after them. With `after_update`, first the messages up to `after_seq` that
    /// were edited or deleted after that `update_seq`, as `message_updated` frames.
    case resume(chatID: ChatID, afterSeq: Int64, afterUpdate: Int64? = nil)

    /// The `type` values clients may send.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case send, read, typing, resume
    }

    public var kind: Kind {
        switch self {
        case .send: .send
        case .read: .read
        case .typing: .typing
        case .resume: .resume
        }
    }

    public var chatID: ChatID {
        switch self {
        case .send(let chatID, _, _, _), .read(let chatID, _), .typing(let chatID), .resume(let chatID, _, _): chatID
        }
    }
}

extension ClientFrame: Codable {
    enum CodingKeys: String, CodingKey {
        case type, text, seq
        case chatID = "chat_id"
        case clientID = "client_id"
        case afterSeq = "after_seq"
        case replyTo = "reply_to"
        case afterUpdate = "after_update"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let chatID = try container.decode(ChatID.self, forKey: .chatID)
        switch try container.decode(Kind.self, forKey: .type) {
        case .send:
            self = .send(
                chatID: chatID, clientID: try container.decode(String.self, forKey: .clientID),
                text: try container.decode(String.self, forKey: .text),
                replyTo: try container.decodeIfPresent(MessageID.self, forKey: .replyTo))
        case .read: self = .read(chatID: chatID, seq: try container.decode(Int64.self, forKey: .seq))
        case .typing: self = .typing(chatID: chatID)
        case .resume:
            self = .resume(
                chatID: chatID, afterSeq: try container.decode(Int64.self, forKey: .afterSeq),
                afterUpdate: try container.decodeIfPresent(Int64.self, forKey: .afterUpdate))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .type)
        try container.encode(chatID, forKey: .chatID)
        switch self {
        case .send(_, let clientID, let text, let replyTo):
            try container.encode(clientID, forKey: .clientID)
            try container.encode(text, forKey: .text)
            try container.encodeIfPresent(replyTo, forKey: .replyTo)
        case .read(_, let seq): try container.encode(seq, forKey: .seq)
        case .typing: break
        case .resume(_, let afterSeq, let afterUpdate):
            try container.encode(afterSeq, forKey: .afterSeq)
            try container.encodeIfPresent(afterUpdate, forKey: .afterUpdate)
        }
    }
}
