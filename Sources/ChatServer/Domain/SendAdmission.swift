/// Admission control for sends: whether a send may join its chat's queue.
///
/// A send is refused at once with ``ChatError/overloaded(retryAfterMilliseconds:)``, and
/// nothing is stored, when it would wait longer than ``Limits/maxWait`` behind the batches
/// ahead of it, or when the node already holds ``Limits/maxQueued`` sends that have not been
/// answered. A messenger that says "busy, retry in 300 ms" at once does better than one that
/// says "sent" twenty seconds later: the refused client backs off, and the sends that were
/// accepted stay fast.
///
/// The wait is estimated from recent batches: how long the chat's batch in flight has been
/// storing, and how long a batch took to commit lately (a moving average over the node's
/// batches, which includes the wait for a pooled connection, so it grows when the database
/// or the pool is the bottleneck). A send into an idle chat is stored at once, as a batch of
/// its own: it is always admitted while the node is under its count, which also keeps the
/// average up to date when everything else is refused. Pure state, no clock of its own: the
/// caller passes the times in.
public struct SendAdmission: Sendable {
    /// The bounds; see docs/protocol.md (`overloaded`) and docs/operations.md.
    public struct Limits: Sendable, Equatable {
        /// The longest a send may expect to wait for its commit (`CHAT_SEND_MAX_WAIT_MS`).
        public var maxWait: Duration
        /// The most sends the node holds unanswered, over all chats (`CHAT_SEND_MAX_QUEUED`).
        public var maxQueued: Int

        public static let `default` = Limits(maxWait: .milliseconds(500), maxQueued: 10_000)

        public init(maxWait: Duration, maxQueued: Int) {
            self.maxWait = maxWait
            self.maxQueued = maxQueued
        }
    }

    let limits: Limits
    /// Most messages one batch stores (``MessageAppender/maxBatch``).
    let maxBatch: Int
    /// The moving average of recent batches' time from asking the store until it answered.
    private(set) var batchTime: Duration = .zero
    /// Sends admitted and not yet answered, on the whole node.
    private(set) var unanswered = 0

    init(limits: Limits, maxBatch: Int) {
        self.limits = limits
        self.maxBatch = maxBatch
    }

    /// Admits a send into a chat or throws ``ChatError/overloaded(retryAfterMilliseconds:)``.
    /// - Parameters:
    ///   - waiting: sends of the chat queued behind its batch in flight.
    ///   - storingFor: how long the chat's batch in flight has been storing; nil when the
    ///     chat is idle.
    mutating func admit(waiting: Int, storingFor: Duration?) throws(ChatError) {
        guard unanswered < limits.maxQueued else {
            throw .overloaded(retryAfterMilliseconds: Self.milliseconds(max(batchTime, .milliseconds(100))))
        }
        if let wait = expectedWait(waiting: waiting, storingFor: storingFor), wait > limits.maxWait {
            throw .overloaded(retryAfterMilliseconds: Self.milliseconds(wait))
        }
        unanswered += 1
    }

    /// How long a send arriving now would wait for its commit; nil for an idle chat.
    func expectedWait(waiting: Int, storingFor elapsed: Duration?) -> Duration? {
        guard let elapsed else { return nil }
        // A batch that has been storing longer than usual says the database is slower now.
        let perBatch = max(batchTime, elapsed)
        let batchesToCommit = (waiting + 1 + maxBatch - 1) / maxBatch
        return (perBatch - elapsed) + perBatch * batchesToCommit
    }

    /// A batch of `count` sends was answered (stored or failed) `duration` after it was handed
    /// to the store.
    mutating func batchAnswered(count: Int, after duration: Duration) {
        unanswered -= count
        batchTime = batchTime == .zero ? duration : batchTime * 0.8 + duration * 0.2
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        let milliseconds = Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
        return min(max(milliseconds, 50), 10_000)
    }
}
