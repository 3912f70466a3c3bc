import Foundation

/// Body of `POST /chat`.
public struct CreateChatRequest: Codable, Sendable, Equatable {
    public var name: String
    public var chatType: ChatType

    public init(name: String, chatType: ChatType) {
        self.name = name
        self.chatType = chatType
    }

    enum CodingKeys: String, CodingKey {
        case name
        case chatType = "chat_type"
    }
}

/// A member of a chat and how far they have read.
public struct MemberPayload: Codable, Sendable, Equatable {
    public var userID: UserID
    public var name: String
    /// The member has read every message with `seq` up to and including this one.
    public var readSeq: Int64

    public init(userID: UserID, name: String, readSeq: Int64) {
        self.userID = userID
        self.name = name
        self.readSeq = readSeq
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case name
        case readSeq = "read_seq"
    }
}

/// A chat with its members (`POST /chat`, `GET /chats/{chat_id}`, add and remove member).
public struct ChatPayload: Codable, Sendable, Equatable {
    public var id: ChatID
    public var name: String
    public var chatType: ChatType
    public var creatorID: UserID
    @ISOTimestamp public var createdAt: Date
    /// `seq` of the newest message; 0 when the chat is empty.
    public var lastSeq: Int64
    /// `update_seq` of the newest edit or deletion in the chat; 0 when none. Nil only from
    /// servers older than 0.3, which have neither.
    public var lastUpdate: Int64?
    public var members: [MemberPayload]

    public init(
        id: ChatID, name: String, chatType: ChatType, creatorID: UserID, createdAt: Date, lastSeq: Int64,
        lastUpdate: Int64? = 0, members: [MemberPayload]
    ) {
        self.id = id
        self.name = name
        self.chatType = chatType
        self.creatorID = creatorID
        self.createdAt = createdAt
        self.lastSeq = lastSeq
        self.lastUpdate = lastUpdate
        self.members = members
    }

    enum CodingKeys: String, CodingKey {
        case id, name, members
        case chatType = "chat_type"
        case creatorID = "creator_id"
        case createdAt = "created_at"
        case lastSeq = "last_seq"
        case lastUpdate = "last_update"
    }
}

/// One entry of `GET /chats`: a chat of the caller with what a chat list shows.
public struct ChatSummaryPayload: Codable, Sendable, Equatable {
    public var id: ChatID
    public var name: String
    public var chatType: ChatType
    public var creatorID: UserID
    public var lastSeq: Int64
    /// The caller's read marker in this chat.
    public var readSeq: Int64
    /// Messages after the caller's read marker.
    public var unreadCount: Int64
    public var lastMessage: MessagePayload?
    /// The name of the last message's sender (null without messages), for "Arina: …" in a list.
    public var lastSenderName: String?

    public init(
        id: ChatID, name: String, chatType: ChatType, creatorID: UserID, lastSeq: Int64, readSeq: Int64,
        unreadCount: Int64, lastMessage: MessagePayload?, lastSenderName: String?
    ) {
        self.id = id
        self.name = name
        self.chatType = chatType
        self.creatorID = creatorID
        self.lastSeq = lastSeq
        self.readSeq = readSeq
        self.unreadCount = unreadCount
        self.lastMessage = lastMessage
        self.lastSenderName = lastSenderName
    }

    enum CodingKeys: String, CodingKey {
        case id, name
        case chatType = "chat_type"
        case creatorID = "creator_id"
        case lastSeq = "last_seq"
        case readSeq = "read_seq"
        case unreadCount = "unread_count"
        case lastMessage = "last_message"
        case lastSenderName = "last_sender_name"
    }
}

/// Response of the admin-only `GET /chat/sync/persistent`: what the database holds, and the
/// connections whose subscriptions were rebuilt from it.
public struct SyncReportPayload: Codable, Sendable, Equatable {
    public var users: Int64
    public var chats: Int64
    public var members: Int64
    public var messages: Int64
    /// Users with an open WebSocket connection on the answering server.
    public var liveUsers: Int64
    /// Open WebSocket connections on the answering server.
    public var liveConnections: Int64

    public init(users: Int64, chats: Int64, members: Int64, messages: Int64, liveUsers: Int64, liveConnections: Int64) {
        self.users = users
        self.chats = chats
        self.members = members
        self.messages = messages
        self.liveUsers = liveUsers
        self.liveConnections = liveConnections
    }

    enum CodingKeys: String, CodingKey {
        case users, chats, members, messages
        case liveUsers = "live_users"
        case liveConnections = "live_connections"
    }
}

/// A member added to or removed from a chat, and where among its messages
/// (`GET /chats/{chat_id}/membership-events`): what a client shows as "Sergey removed Arina".
public struct MembershipEventPayload: Codable, Sendable, Equatable {
    /// What happened, named as the live frame that announces it.
    public enum Kind: String, Codable, Sendable {
        case memberAdded = "member_added"
        case memberRemoved = "member_removed"
    }

    /// Increases in the order the chat's events happened.
    public var id: Int64
    public var chatID: ChatID
    public var type: Kind
    /// The member added or removed.
    public var userID: UserID
    public var userName: String
    /// Who did it; absent when no member did (an administrator's tool).
    public var actorID: UserID?
    public var actorName: String?
    /// It happened after the message with this `seq` (0: before the first message).
    public var afterSeq: Int64
    @ISOTimestamp public var timestamp: Date

    public init(
        id: Int64, chatID: ChatID, type: Kind, userID: UserID, userName: String, actorID: UserID?,
        actorName: String?, afterSeq: Int64, timestamp: Date
    ) {
        self.id = id
        self.chatID = chatID
        self.type = type
        self.userID = userID
        self.userName = userName
        self.actorID = actorID
        self.actorName = actorName
        self.afterSeq = afterSeq
        self.timestamp = timestamp
    }

    enum CodingKeys: String, CodingKey {
        case id, type, timestamp
        case chatID = "chat_id"
        case userID = "user_id"
        case userName = "user_name"
        case actorID = "actor_id"
        case actorName = "actor_name"
        case afterSeq = "after_seq"
    }
}
