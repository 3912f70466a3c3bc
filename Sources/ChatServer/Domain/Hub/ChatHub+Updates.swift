import ChatProtocol
import Logging
import NIOCore
import Synchronization

/// Edits and deletions: reading a chat's updated messages from the store and delivering them
/// as `message_updated` frames, one read per chat at a time (``UpdateDelivery``).
extension ChatHub {
    /// Most updated messages one read returns.
    static let updateReadLimit = 100

    /// Tells the hub that messages of `chat` were edited or deleted, the last under `updateSeq`
    /// (this node's own, another node's, or the store's count). Every connection following the
    /// chat gets the updated messages, read from the store, in `update_seq` order.
    public func messagesUpdated(in chat: ChatID, upTo updateSeq: Int64) {
        if shard(chat).ordering.withLock({ $0.messagesUpdated(in: chat, upTo: updateSeq) }) {
            updateReads.yield(chat)
        }
    }

    /// Reads and delivers the chat's updates until every known one is delivered.
    func deliverUpdates(of chat: ChatID) async {
        while !Task.isCancelled, let after = shard(chat).ordering.withLock({ $0.nextUpdateRead(in: chat) }) {
            do {
                let messages = try await store.updatedMessages(in: chat, after: after, limit: Self.updateReadLimit)
                let markers = ReadMarkers(try await store.members(of: chat))
                let updated = messages.map {
                    (
                        message: $0,
                        frame: FrameEncoding.encode(.messageUpdated(MessagePayload($0, isRead: markers.isRead($0))))
                    )
                }
                let awaited = shard(chat).ordering.withLock {
                    $0.deliverUpdates(updated, in: chat, heldLimit: limits.heldFrames)
                }
                if let awaited {
                    // The message itself is not delivered here yet, though it is committed: have
                    // it read now, and read the updates again once it had time to arrive.
                    committed(in: chat, upTo: awaited)
                    try? await clock.sleep(for: limits.gapGrace)
                }
            } catch {
                logger.warning(
                    "Could not read a chat's updated messages; retrying",
                    metadata: ["chat.chat_id": "\(chat)", "error": "\(error)"])
                try? await clock.sleep(for: limits.gapRetryDelay)
            }
        }
    }
}
