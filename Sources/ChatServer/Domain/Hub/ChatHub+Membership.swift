import ChatProtocol
import Synchronization

/// Membership changes: who joins and leaves a chat's live delivery, also rebuilt from the store.
extension ChatHub {
    /// Starts delivering `chat` to the new member's connections, with a `member_added`
    /// frame carrying the chat and the position where delivery starts; tells everyone else.
    public func memberAdded(_ details: ChatDetails, user: UserID) {
        let chat = details.chat.id
        let othersFrame = FrameEncoding.encode(.memberAdded(chatID: chat, userID: user, chat: nil))
        shard(chat).ordering.withLock {
            $0.broadcast(othersFrame, to: chat, excludingUser: user, heldLimit: limits.heldFrames)
        }
        join(connections(of: user), to: details)
    }

    /// Subscribes `connections` to a chat at its current position and sends each a
    /// `member_added` frame for its own user, carrying the chat. A connection that already
    /// follows the chat is left alone: it opened after the addition, and another node's notice
    /// of it arrived late (its `ready` listed the chat; a second subscription would also move
    /// its cursor).
    private func join(_ connections: [ChatConnection], to details: ChatDetails) {
        let chat = details.chat.id
        shard(chat).ordering.withLock { state in
            for connection in connections where connection.accepts(chat) && !connection.chats.contains(chat) {
                guard let position = state.subscribe(connection, to: chat, at: details.chat.position, held: false)
                else { continue }
                let readyChat = ReadyChat(details, position: position, isOnline: isOnline)
                connection.outbox.offer(
                    FrameEncoding.encode(.memberAdded(chatID: chat, userID: connection.userID, chat: readyChat)))
            }
        }
    }

    /// Stops delivering `chat` to the removed member's connections at once (they get a
    /// `member_removed` frame last) and tells everyone else, with the new creator if there is one.
    public func memberRemoved(chat: ChatID, user: UserID, newCreator: UserID?) {
        let frame = FrameEncoding.encode(.memberRemoved(chatID: chat, userID: user, creatorID: newCreator))
        shard(chat).ordering.withLock { state in
            let leaving = (state.channels[chat]?.subscribers.values.map(\.connection) ?? []).filter {
                $0.userID == user
            }
            for connection in leaving {
                state.unsubscribe(connection.id, from: chat)
                connection.outbox.offer(frame)
            }
            state.broadcast(frame, to: chat, excludingUser: nil, heldLimit: limits.heldFrames)
        }
    }

    /// Rebuilds, from the store, which chats every connection on this node follows, without
    /// disconnecting anyone: connections join chats their user was added to and leave chats
    /// their user left, with `member_added` / `member_removed` frames.
    /// - Returns: the users and connections checked.
    public func resync() async throws -> (users: Int, connections: Int) {
        var checked = (users: 0, connections: 0)
        for user in onlineUsers() {
            let wanted = Dictionary(
                uniqueKeysWithValues: try await store.chatDetails(for: user).map { ($0.chat.id, $0) })
            let connections = connections(of: user)
            checked.users += 1
            checked.connections += connections.count
            for connection in connections {
                let following = connection.chats
                for (chat, details) in wanted where !following.contains(chat) {
                    join([connection], to: details)
                }
                let leftFrame = { (chat: ChatID) in FrameEncoding.encode(.memberRemoved(chatID: chat, userID: user)) }
                for chat in following where wanted[chat] == nil {
                    shard(chat).ordering.withLock { $0.unsubscribe(connection.id, from: chat) }
                    connection.outbox.offer(leftFrame(chat))
                }
            }
        }
        return checked
    }
}
