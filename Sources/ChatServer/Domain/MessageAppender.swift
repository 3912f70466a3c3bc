import ChatProtocol
import Synchronization

/// Stores concurrent sends into one chat together. While a transaction appends to a chat,
/// later sends to it wait, and the next transaction stores all of them (up to ``maxBatch``)
/// at once. Appends to one chat take turns anyway (the chat row's lock hands out its `seq`s),
/// so without batching every message pays a whole commit, fsync included, while the others
/// wait; with it a busy chat pays one commit per batch. A send into an idle chat is stored
/// at once, as a batch of one.
final class MessageAppender: Sendable {
    /// Most messages one transaction stores.
    static let maxBatch = 128

    private struct Pending: Sendable {
        let message: NewMessage
        let continuation: CheckedContinuation<AppendedMessage, any Error>
    }

    /// A sender's client id: the key that makes a send duplicate-free.
    private struct SendKey: Hashable {
        let sender: UserID
        let clientID: String
    }

    private let store: any ChatStore
    /// The sends waiting, per chat. A chat has an entry while a task stores its batches.
    private let waiting = Mutex<[ChatID: [Pending]]>([:])

    init(store: any ChatStore) {
        self.store = store
    }

    /// Stores `message` with the next batch of its chat: see ``ChatStore/appendMessages(_:)``.
    func append(_ message: NewMessage) async throws -> AppendedMessage {
        try await withCheckedThrowingContinuation { continuation in
            let chatWasIdle = waiting.withLock { waiting in
                let wasIdle = waiting[message.chatID] == nil
                waiting[message.chatID, default: []].append(Pending(message: message, continuation: continuation))
                return wasIdle
            }
            // Its own task, so that no sender's cancellation fails the others' batch.
            if chatWasIdle { Task { await self.drain(message.chatID) } }
        }
    }

    /// Stores the chat's waiting sends, a batch at a time, until none are left.
    private func drain(_ chat: ChatID) async {
        while let batch = nextBatch(of: chat) {
            await store(batch)
        }
    }

    private func nextBatch(of chat: ChatID) -> [Pending]? {
        waiting.withLock { waiting in
            guard let queue = waiting[chat], !queue.isEmpty else {
                waiting[chat] = nil
                return nil
            }
            let batch = Array(queue.prefix(Self.maxBatch))
            waiting[chat] = Array(queue.dropFirst(batch.count))
            return batch
        }
    }

    private func store(_ batch: [Pending]) async {
        // The same client id twice in one batch (two devices of one user racing, or a retry
        // while the first attempt waits) is stored once; the later send gets the duplicate.
        var messages: [NewMessage] = []
        var firstIndex: [SendKey: Int] = [:]
        let indexes = batch.map { pending in
            guard let clientID = pending.message.clientID else {
                messages.append(pending.message)
                return (index: messages.count - 1, repeated: false)
            }
            let key = SendKey(sender: pending.message.senderID, clientID: clientID)
            if let index = firstIndex[key] { return (index: index, repeated: true) }
            messages.append(pending.message)
            firstIndex[key] = messages.count - 1
            return (index: messages.count - 1, repeated: false)
        }
        do {
            let results = try await store.appendMessages(messages)
            guard results.count == messages.count else {
                throw StorageError.unexpected("appendMessages returned \(results.count) results for \(messages.count)")
            }
            for (pending, (index, repeated)) in zip(batch, indexes) {
                pending.continuation.resume(
                    with: results[index].map { repeated ? AppendedMessage(message: $0.message, duplicate: true) : $0 })
            }
        } catch {
            for pending in batch { pending.continuation.resume(throwing: error) }
        }
    }
}
