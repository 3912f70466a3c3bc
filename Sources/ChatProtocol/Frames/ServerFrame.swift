/// A frame the server sends over the WebSocket: a JSON object whose `type` says which.
public enum ServerFrame: Sendable, Equatable {
    /// First frame of every connection: who you are and your chats, with the position where
    /// live delivery starts for each.
    case ready(ReadyPayload)
    /// To the connection that sent `client_id`: the stored message. `duplicate` is true when
    /// the message had been stored before (by a retry or another device).
    case ack(clientID: String, message: MessagePayload, duplicate: Bool)
    /// A new message, to every connection of the chat's members but the sending one.
    case message(MessagePayload)
    /// A message was edited or deleted: its state now, to every connection following the chat.
    /// Keep it when its `update_seq` is above the one you hold for that message.
    case messageUpdated(MessagePayload)
    /// `user_id`'s read marker in the chat moved forward to `seq`.
    case read(chatID: ChatID, userID: UserID, seq: Int64)
    /// `user_id` is typing in the chat.
    case typing(chatID: ChatID, userID: UserID)
    /// `user_id` came online (their first connection opened) or went offline (their last closed).
    case presence(userID: UserID, online: Bool)
    /// `user_id` joined the chat. The new member's own connections get `chat`, with the
    /// position where live delivery of it starts.
    case memberAdded(chatID: ChatID, userID: UserID, chat: ReadyChat?)
    /// `user_id` left the chat, or was removed; their connections receive nothing more from
    /// it. `creatorID` comes when the chat's creator left: the member who became its creator.
    case memberRemoved(chatID: ChatID, userID: UserID, creatorID: UserID? = nil)
    /// The end of a `resume`: every message of the chat up to `lastSeq` has been sent, and
    /// delivery is live from here.
    case resumed(chatID: ChatID, lastSeq: Int64)
    /// A frame could not be processed. `ref` is the `client_id` of a failed `send`, or the
    /// `type` of another failed frame. `retry_after_ms` comes with `overloaded`: how long to
    /// wait before repeating the send (with the same `client_id`).
    /// `chatID` names the chat of the frame that failed, when it named one.
    case error(code: String, message: String, ref: String?, retryAfterMs: Int? = nil, chatID: ChatID? = nil)

    /// The `type` values the server sends.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case ready, ack, message, read, typing, presence, error
        case memberAdded = "member_added"
        case memberRemoved = "member_removed"
        case messageUpdated = "message_updated"
        case resumed
    }

    public var kind: Kind {
        switch self {
        case .ready: .ready
        case .ack: .ack
        case .message: .message
        case .messageUpdated: .messageUpdated
        case .read: .read
        case .typing: .typing
        case .presence: .presence
        case .memberAdded: .memberAdded
        case .memberRemoved: .memberRemoved
        case .resumed: .resumed
        case .error: .error
        }
    }
}

/// The `ready` frame's content.
public struct ReadyPayload: Codable, Sendable, Equatable {
    public var user: UserPayload
    public var chats: [ReadyChat]
    /// Most messages one `resume` returns; page older ones with `GET /history`.
    public var resumeLimit: Int
    /// The database's generation. When it differs from the one a client saw before, the
    /// database was restored from a backup: the client drops every position it holds and reads
    /// its chats again, because their seqs now name other messages.
    public var generation: String

    public init(user: UserPayload, chats: [ReadyChat], resumeLimit: Int, generation: String) {
        self.user = user
        self.chats = chats
        self.resumeLimit = resumeLimit
        self.generation = generation
    }

    enum CodingKeys: String, CodingKey {
        case user, chats, generation
        case resumeLimit = "resume_limit"
    }

    /// Reads a `ready` from servers older than 0.3, which send no `generation`, as generation
    /// "": a client then never sees it change, as there was no restore it could learn of.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            user: try container.decode(UserPayload.self, forKey: .user),
            chats: try container.decode([ReadyChat].self, forKey: .chats),
            resumeLimit: try container.decode(Int.self, forKey: .resumeLimit),
            generation: try container.decodeIfPresent(String.self, forKey: .generation) ?? "")
    }
}

/// A chat as a connection starts following it.
public struct ReadyChat: Codable, Sendable, Equatable {
    public var id: ChatID
    public var name: String
    public var chatType: ChatType
    public var creatorID: UserID
    /// Live delivery on this connection continues with `last_seq + 1`: fetch history up to
    /// here, or `resume` from what you have.
    public var lastSeq: Int64
    /// Live delivery of edits and deletions on this connection continues after this
    /// `update_seq`: `resume` with the `after_update` you hold to learn of the ones before.
    public var lastUpdate: Int64
    /// Every member with their read marker and whether they are online.
    public var members: [ReadyMember]

    public init(
        id: ChatID, name: String, chatType: ChatType, creatorID: UserID, lastSeq: Int64, lastUpdate: Int64 = 0,
        members: [ReadyMember]
    ) {
        self.id = id
        self.name = name
        self.chatType = chatType
        self.creatorID = creatorID
        self.lastSeq = lastSeq
        self.lastUpdate = lastUpdate
        self.members = members
    }

    enum CodingKeys: String, CodingKey {
        case id, name, members
        case chatType = "chat_type"
        case creatorID = "creator_id"
        case lastSeq = "last_seq"
        case lastUpdate = "last_update"
    }

    /// Reads chats of servers older than 0.3, which send no `last_update`, as 0.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(ChatID.self, forKey: .id), name: try container.decode(String.self, forKey: .name),
            chatType: try container.decode(ChatType.self, forKey: .chatType),
            creatorID: try container.decode(UserID.self, forKey: .creatorID),
            lastSeq: try container.decode(Int64.self, forKey: .lastSeq),
            lastUpdate: try container.decodeIfPresent(Int64.self, forKey: .lastUpdate) ?? 0,
            members: try container.decode([ReadyMember].self, forKey: .members))
    }
}

/// A member of a chat in `ready` and `member_added`.
public struct ReadyMember: Codable, Sendable, Equatable {
    public var userID: UserID
    public var name: String
    public var readSeq: Int64
    public var online: Bool

    public init(userID: UserID, name: String, readSeq: Int64, online: Bool) {
        self.userID = userID
        self.name = name
        self.readSeq = readSeq
        self.online = online
    }

    enum CodingKeys: String, CodingKey {
        case name, online
        case userID = "user_id"
        case readSeq = "read_seq"
    }
}

extension ServerFrame: Codable {
    enum CodingKeys: String, CodingKey {
        case type, message, duplicate, seq, online, chat, code, ref
        case clientID = "client_id"
        case chatID = "chat_id"
        case userID = "user_id"
        case retryAfterMs = "retry_after_ms"
        case lastSeq = "last_seq"
        case creatorID = "creator_id"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(Kind.self, forKey: .type) {
        case .ready: self = .ready(try ReadyPayload(from: decoder))
        case .ack:
            self = .ack(
                clientID: try container.decode(String.self, forKey: .clientID),
                message: try container.decode(MessagePayload.self, forKey: .message),
                duplicate: try container.decode(Bool.self, forKey: .duplicate))
        case .message: self = .message(try container.decode(MessagePayload.self, forKey: .message))
        case .messageUpdated: self = .messageUpdated(try container.decode(MessagePayload.self, forKey: .message))
        case .read:
            self = .read(
                chatID: try container.decode(ChatID.self, forKey: .chatID),
                userID: try container.decode(UserID.self, forKey: .userID),
                seq: try container.decode(Int64.self, forKey: .seq))
        case .typing:
            self = .typing(
                chatID: try container.decode(ChatID.self, forKey: .chatID),
                userID: try container.decode(UserID.self, forKey: .userID))
        case .presence:
            self = .presence(
                userID: try container.decode(UserID.self, forKey: .userID),
                online: try container.decode(Bool.self, forKey: .online))
        case .memberAdded:
            self = .memberAdded(
                chatID: try container.decode(ChatID.self, forKey: .chatID),
                userID: try container.decode(UserID.self, forKey: .userID),
                chat: try container.decodeIfPresent(ReadyChat.self, forKey: .chat))
        case .memberRemoved:
            self = .memberRemoved(
                chatID: try container.decode(ChatID.self, forKey: .chatID),
                userID: try container.decode(UserID.self, forKey: .userID),
                creatorID: try container.decodeIfPresent(UserID.self, forKey: .creatorID))
        case .resumed:
            self = .resumed(
                chatID: try container.decode(ChatID.self, forKey: .chatID),
                lastSeq: try container.decode(Int64.self, forKey: .lastSeq))
        case .error:
            self = .error(
                code: try container.decode(String.self, forKey: .code),
                message: try container.decode(String.self, forKey: .message),
                ref: try container.decodeIfPresent(String.self, forKey: .ref),
                retryAfterMs: try container.decodeIfPresent(Int.self, forKey: .retryAfterMs),
                chatID: try container.decodeIfPresent(ChatID.self, forKey: .chatID))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .type)
        switch self {
        case .ready(let payload): try payload.encode(to: encoder)
        case .ack(let clientID, let message, let duplicate):
            try container.encode(clientID, forKey: .clientID)
            try container.encode(message, forKey: .message)
            try container.encode(duplicate, forKey: .duplicate)
        case .message(let message), .messageUpdated(let message): try container.encode(message, forKey: .message)
        case .read(let chatID, let userID, let seq):
            try container.encode(chatID, forKey: .chatID)
            try container.encode(userID, forKey: .userID)
            try container.encode(seq, forKey: .seq)
        case .typing(let chatID, let userID):
            try container.encode(chatID, forKey: .chatID)
            try container.encode(userID, forKey: .userID)
        case .presence(let userID, let online):
            try container.encode(userID, forKey: .userID)
            try container.encode(online, forKey: .online)
        case .memberAdded(let chatID, let userID, let chat):
            try container.encode(chatID, forKey: .chatID)
            try container.encode(userID, forKey: .userID)
            try container.encodeIfPresent(chat, forKey: .chat)
        case .memberRemoved(let chatID, let userID, let creatorID):
            try container.encode(chatID, forKey: .chatID)
            try container.encode(userID, forKey: .userID)
            try container.encodeIfPresent(creatorID, forKey: .creatorID)
        case .resumed(let chatID, let lastSeq):
            try container.encode(chatID, forKey: .chatID)
            try container.encode(lastSeq, forKey: .lastSeq)
        case .error(let code, let message, let ref, let retryAfterMs, let chatID):
            try container.encode(code, forKey: .code)
            try container.encode(message, forKey: .message)
            try container.encodeIfPresent(ref, forKey: .ref)
            try container.encodeIfPresent(retryAfterMs, forKey: .retryAfterMs)
            try container.encodeIfPresent(chatID, forKey: .chatID)
        }
    }
}
