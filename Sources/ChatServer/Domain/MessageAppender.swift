import ChatProtocol
import Synchronization

/// Stores concurrent sends into one chat together. While a transaction appends to a chat,
/// later sends to it wait, and the next transaction stores all of them (up to ``maxBatch``)
/// at once. Appends to one chat take turns anyway (the chat row's lock hands out its `seq`s),
/// so without batching every message pays a whole commit, fsync included, while the others
/// wait; with it a busy chat pays one commit per batch. A send into an idle chat is stored
/// at once, as a batch of one.
///
/// Before a send joins the queue, ``SendAdmission`` decides whether the node can store it soon
/// enough; if not, it is refused at once and nothing is stored.
final class MessageAppender: Sendable {
    /// Most messages one transaction stores.
    static let maxBatch = 128

    /// What a send's answer is handed to, in the chat's task, in `seq` order within a batch.
    typealias Answer = @Sendable (Result<AppendedMessage, any Error>) -> Void

    private struct Pending: Sendable {
        let message: NewMessage
        let answer: Answer
    }

    /// A sender's client id: the key that makes a send duplicate-free.
    private struct SendKey: Hashable {
        let sender: UserID
        let clientID: String
    }

    /// A chat whose batches are being stored: the sends waiting for the next batch, and when
    /// the batch in flight was handed to the store.
    private struct ChatQueue {
        var waiting: [Pending] = []
        /// When the batch in flight was handed to the store, on the appender's stopwatch; nil
        /// between batches.
        var storingSince: Duration?

        /// How long the chat's batch has been storing, for admission: nil when nothing is
        /// stored or waiting (a send now is stored at once), zero between batches.
        func storingFor(at now: Duration) -> Duration? {
            guard let storingSince else { return waiting.isEmpty ? nil : .zero }
            return now - storingSince
        }
    }

    private struct State {
        /// A chat has an entry while a task stores its batches.
        var chats: [ChatID: ChatQueue] = [:]
        var admission: SendAdmission
    }

    private let store: any MessageLog
    /// What batch times and the batch in flight are measured on.
    private let stopwatch: Stopwatch
    private let state: Mutex<State>

    init(store: any MessageLog, limits: SendAdmission.Limits = .default, stopwatch: Stopwatch) {
        self.store = store
        self.stopwatch = stopwatch
        self.state = Mutex(State(admission: SendAdmission(limits: limits, maxBatch: Self.maxBatch)))
    }

    /// Queues `message` for the next batch of its chat (see ``ChatStore/appendMessages(_:)``)
    /// and returns at once; sends queued one after another into a chat are stored in that order.
    /// Once the batch is answered, `answer` gets the outcome. The answers of a batch are given
    /// one after another, in the order of the sends, before the chat's next batch is stored:
    /// whatever `answer` publishes goes out in `seq` order. It must not block.
    /// - Throws: ``ChatError/overloaded(retryAfterMilliseconds:)`` when admission refuses it;
    ///   then `answer` is never called.
    func enqueue(_ message: NewMessage, answer: @escaping Answer) throws(ChatError) {
        let now = stopwatch.elapsed
        let chatWasIdle = try state.withLock { (state) throws(ChatError) -> Bool in
            let queue = state.chats[message.chatID]
            try state.admission.admit(waiting: queue?.waiting.count ?? 0, storingFor: queue?.storingFor(at: now))
            state.chats[message.chatID, default: ChatQueue()].waiting.append(Pending(message: message, answer: answer))
            return queue == nil
        }
        // Its own task, so that no sender's cancellation fails the others' batch. It ends when
        // the chat's queue is empty.
        if chatWasIdle { Task { await self.drain(message.chatID) } }
    }

    /// Stores `message` with the next batch of its chat.
    func append(_ message: NewMessage) async throws -> AppendedMessage {
        try await withCheckedThrowingContinuation { continuation in
            do {
                try enqueue(message) { continuation.resume(with: $0) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Stores the chat's waiting sends, a batch at a time, until none are left.
    private func drain(_ chat: ChatID) async {
        while let batch = nextBatch(of: chat) {
            let started = stopwatch.elapsed
            let answers = await store(batch)
            let took = stopwatch.elapsed - started
            // The chat stops counting as storing before anyone hears the answer: a sender
            // that sends again at once finds it idle.
            state.withLock { state in
                state.admission.batchAnswered(count: batch.count, after: took)
                state.chats[chat]?.storingSince = nil
            }
            for (pending, answer) in zip(batch, answers) { pending.answer(answer) }
        }
    }

    private func nextBatch(of chat: ChatID) -> [Pending]? {
        state.withLock { state in
            guard let queue = state.chats[chat], !queue.waiting.isEmpty else {
                state.chats[chat] = nil
                return nil
            }
            let batch = Array(queue.waiting.prefix(Self.maxBatch))
            state.chats[chat] = ChatQueue(
                waiting: Array(queue.waiting.dropFirst(batch.count)), storingSince: stopwatch.elapsed)
            state.admission.batchStarted()
            return batch
        }
    }

    /// Stores a batch and returns each send's answer, in the batch's order.
    private func store(_ batch: [Pending]) async -> [Result<AppendedMessage, any Error>] {
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
            // A reply must answer a message of its own chat. A message never changes chat, so
            // this read cannot go stale before the batch is stored.
            let replyTargets = Set(messages.compactMap(\.replyTo))
            let targetChats = replyTargets.isEmpty ? [:] : try await store.chats(ofMessages: replyTargets)
            let valid = messages.indices.filter { index in
                messages[index].replyTo.map { targetChats[$0] == messages[index].chatID } ?? true
            }
            let stored = try await store.appendMessages(valid.map { messages[$0] })
            guard stored.count == valid.count else {
                throw StorageError.unexpected("appendMessages returned \(stored.count) results for \(valid.count)")
            }
            var results = [Result<AppendedMessage, ChatError>](
                repeating: .failure(.invalidReply), count: messages.count)
            for (index, result) in zip(valid, stored) { results[index] = result }
            return indexes.map { index, repeated in
                results[index].map { repeated ? AppendedMessage(message: $0.message, duplicate: true) : $0 }
                    .mapError { $0 as any Error }
            }
        } catch {
            return batch.map { _ in .failure(error) }
        }
    }
}
