import ChatProtocol

// Domain values as the API shows them. The one place where domain types meet wire types.

extension AccountPayload {
    init(_ user: User) {
        self.init(id: user.id, name: user.name, email: user.email, isAdmin: user.isAdmin, createdAt: user.createdAt)
    }
}

extension UserPayload {
    init(_ user: User) {
        self.init(id: user.id, name: user.name)
    }
}

extension MessagePayload {
    init(_ message: Message, isRead: Bool) {
        self.init(
            id: message.id, chatID: message.chatID, seq: message.seq, senderID: message.senderID,
            clientID: message.clientID, text: message.text, timestamp: message.createdAt, isRead: isRead,
            replyTo: message.replyTo, editedAt: message.editedAt, deleted: message.deleted,
            updateSeq: message.updateSeq)
    }
}

extension ChatPayload {
    init(_ details: ChatDetails) {
        let chat = details.chat
        self.init(
            id: chat.id, name: chat.name, chatType: chat.type, creatorID: chat.creatorID, createdAt: chat.createdAt,
            lastSeq: chat.lastSeq, lastUpdate: chat.lastUpdate,
            members: details.members.map { MemberPayload(userID: $0.userID, name: $0.name, readSeq: $0.readSeq) })
    }
}

extension ChatSummaryPayload {
    init(_ summary: ChatSummary) {
        let chat = summary.chat
        self.init(
            id: chat.id, name: chat.name, chatType: chat.type, creatorID: chat.creatorID, lastSeq: chat.lastSeq,
            readSeq: summary.readSeq, unreadCount: summary.unreadCount,
            lastMessage: summary.lastMessage.map { MessagePayload($0, isRead: summary.isLastMessageRead) },
            lastSenderName: summary.lastSenderName)
    }
}

extension MembershipEventPayload {
    init(_ event: MembershipEvent) {
        let type: Kind =
            switch event.kind {
            case .added: .memberAdded
            case .removed: .memberRemoved
            }
        self.init(
            id: event.id, chatID: event.chatID, type: type, userID: event.user, userName: event.userName,
            actorID: event.actor, actorName: event.actorName, afterSeq: event.afterSeq, timestamp: event.createdAt)
    }
}
