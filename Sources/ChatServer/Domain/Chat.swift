import ChatProtocol
import Foundation

/// A chat: private (two people at most) or group.
public struct Chat: Sendable, Equatable {
    public let id: ChatID
    public let name: String
    public let type: ChatType
    /// The user who created the chat; only they manage its members.
    public let creatorID: UserID
    public let createdAt: Date
    /// `seq` of the newest message, 0 when the chat is empty.
    public let lastSeq: Int64
    /// `update_seq` of the newest edit or deletion of one of its messages, 0 when none.
    public let lastUpdate: Int64

    public init(
        id: ChatID, name: String, type: ChatType, creatorID: UserID, createdAt: Date, lastSeq: Int64,
        lastUpdate: Int64 = 0
    ) {
        self.id = id
        self.name = name
        self.type = type
        self.creatorID = creatorID
        self.createdAt = createdAt
        self.lastSeq = lastSeq
        self.lastUpdate = lastUpdate
    }

    /// Where the chat's messages and their updates stand in the store.
    public var position: LivePosition { LivePosition(lastSeq: lastSeq, lastUpdate: lastUpdate) }

    /// Most members the chat may have, or nil when unlimited.
    public var memberLimit: Int? {
        switch type {
        case .private: 2
        case .group: nil
        }
    }
}

/// A member of a chat with their read marker.
public struct ChatMember: Sendable, Equatable {
    public let userID: UserID
    public let name: String
    /// Every message with `seq <= readSeq` counts as read by this member.
    public let readSeq: Int64

    public init(userID: UserID, name: String, readSeq: Int64) {
        self.userID = userID
        self.name = name
        self.readSeq = readSeq
    }
}

/// A member added to or removed from a chat, where it happened among the chat's messages:
/// what a client shows as "Sergey removed Arina" between them.
public struct MembershipEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case added, removed
    }

    public let id: Int64
    public let chatID: ChatID
    public let kind: Kind
    /// The member added or removed, and their name.
    public let user: UserID
    public let userName: String
    /// Who did it, and their name; nil when no member did (an administrator's tool).
    public let actor: UserID?
    public let actorName: String?
    /// The chat's last `seq` when it happened: the event comes after that message (0: before
    /// the first).
    public let afterSeq: Int64
    public let createdAt: Date

    public init(
        id: Int64, chatID: ChatID, kind: Kind, user: UserID, userName: String, actor: UserID?, actorName: String?,
        afterSeq: Int64, createdAt: Date
    ) {
        self.id = id
        self.chatID = chatID
        self.kind = kind
        self.user = user
        self.userName = userName
        self.actor = actor
        self.actorName = actorName
        self.afterSeq = afterSeq
        self.createdAt = createdAt
    }
}

/// A chat with its current members.
public struct ChatDetails: Sendable, Equatable {
    public let chat: Chat
    public let members: [ChatMember]

    public init(chat: Chat, members: [ChatMember]) {
        self.chat = chat
        self.members = members
    }
}

/// A chat as a chat list shows it to one member.
public struct ChatSummary: Sendable, Equatable {
    public let chat: Chat
    /// The viewer's read marker.
    public let readSeq: Int64
    public let lastMessage: Message?
    /// The name of the last message's sender, former members included (nil without messages).
    public let lastSenderName: String?
    /// The lowest read marker among members other than the last message's sender
    /// (nil when there are none): decides whether the last message is read.
    public let lowestOtherReadSeq: Int64?

    public init(
        chat: Chat, readSeq: Int64, lastMessage: Message?, lastSenderName: String?, lowestOtherReadSeq: Int64?
    ) {
        self.chat = chat
        self.readSeq = readSeq
        self.lastMessage = lastMessage
        self.lastSenderName = lastSenderName
        self.lowestOtherReadSeq = lowestOtherReadSeq
    }

    /// Messages after the viewer's read marker. Sending moves the sender's own marker, so
    /// these are all other people's messages.
    public var unreadCount: Int64 { max(0, chat.lastSeq - readSeq) }

    /// Whether the last message has been read (see ``ReadMarkers``).
    public var isLastMessageRead: Bool {
        guard let lastMessage, let lowestOtherReadSeq else { return false }
        return lowestOtherReadSeq >= lastMessage.seq
    }
}
