/// Admission control for sends: whether a send may join its chat's queue.
///
/// A send is refused at once with ``ChatError/overloaded(retryAfterMilliseconds:)``, and
/// nothing is stored, when it would wait longer than ``Limits/maxWait`` for its commit, or when
/// the node already holds ``Limits/maxQueued`` sends that have not been answered. A messenger
/// that says "busy, retry in 300 ms" at once does better than one that says "sent" twenty
/// seconds later: the refused client backs off, and the sends that were accepted stay fast.
///
/// The wait is estimated from recent batches. Per chat: the rest of the chat's batch in flight
/// and one batch time for every ``maxBatch`` sends queued behind it. Per node: a batch's time
/// is the moving average over the node's batches from asking the store until it answered,
/// which includes waiting for a pooled connection (PostgreSQL) or the one writer (SQLite), so
/// it grows when the database is the bottleneck; a send into an idle chat waits that long. A
/// send is always admitted while nothing at all is being stored, which keeps the average
/// current when everything else is refused. Pure state, no clock of its own: the caller passes
/// the times in.
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
    /// Batches handed to the store and not yet answered, on the whole node.
    private(set) var batchesStoring = 0

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
        let wait = expectedWait(waiting: waiting, storingFor: storingFor)
        guard wait <= limits.maxWait else { throw .overloaded(retryAfterMilliseconds: Self.milliseconds(wait)) }
        unanswered += 1
    }

    /// How long a send arriving now would wait for its commit.
    func expectedWait(waiting: Int, storingFor elapsed: Duration?) -> Duration {
        guard let elapsed else {
            // An idle chat's batch starts at once and takes a batch time, unless nothing is
            // being stored at all: then the average says nothing of now.
            return batchesStoring == 0 ? .zero : batchTime
        }
        // A batch that has been storing longer than usual says the database is slower now.
        let perBatch = max(batchTime, elapsed)
        let batchesToCommit = (waiting + 1 + maxBatch - 1) / maxBatch
        return (perBatch - elapsed) + perBatch * batchesToCommit
    }

    /// A batch was handed to the store.
    mutating func batchStarted() {
        batchesStoring += 1
    }

    /// A batch of `count` sends was answered (stored or failed) `duration` after it was handed
    /// to the store.
    mutating func batchAnswered(count: Int, after duration: Duration) {
        unanswered -= count
        batchesStoring -= 1
        batchTime = batchTime == .zero ? duration : batchTime * 0.8 + duration * 0.2
    }

    /// The wait as `retry_after_ms`: at least 50 ms, at most 2 s. A longer estimate comes from a
    /// batch that hangs (a database restarting), which may end any moment; a refusal is cheap.
    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        let milliseconds = Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
        return min(max(milliseconds, 50), 2000)
    }
}
