import NIOCore
import Synchronization

/// The bounded queue between the hub, which never waits, and one connection's writer task.
///
/// `offer` is synchronous and cheap. When the queue is full the connection is too slow to
/// keep up: the outbox closes with ``CloseReason/slowConsumer``, drops what it holds, and the
/// writer closes the socket so the client can reconnect and `resume`.
public final class Outbox: Sendable {
    /// Why the outbox stopped taking frames.
    public enum CloseReason: Sendable, Equatable {
        /// The connection ended normally (its reader finished).
        case finished
        /// The queue overflowed.
        case slowConsumer
        /// The server closes the connection with this WebSocket close code.
        case closing(code: UInt16, reason: String)
    }

    /// What the writer should do next.
    public enum Batch: Sendable {
        /// Write these frames, oldest first.
        case frames([ByteBuffer])
        /// Stop: the outbox is closed.
        case closed(CloseReason)
    }

    private struct State {
        var frames: CircularBuffer<ByteBuffer>
        /// The writer, waiting for frames or the close.
        var waiter: CheckedContinuation<Void, Never>?
        var closeReason: CloseReason?
        var onForcedClose: (@Sendable (CloseReason) -> Void)?

        /// The close reason, or everything queued, or nil when there is nothing to do yet.
        mutating func takeBatch() -> Batch? {
            if let closeReason { return .closed(closeReason) }
            guard !frames.isEmpty else { return nil }
            defer { frames.removeAll(keepingCapacity: true) }
            return .frames(Array(frames))
        }
    }

    /// Most frames the outbox holds before its connection counts as a slow consumer.
    public let capacity: Int
    private let state: Mutex<State>

    public init(capacity: Int) {
        self.capacity = capacity
        self.state = Mutex(State(frames: CircularBuffer(initialCapacity: 16)))
    }

    /// Registers what to do when the outbox is closed for any reason but ``CloseReason/finished``
    /// (the writer may be stuck on a socket that no longer drains); runs at once if it already is.
    public func onForcedClose(_ action: @escaping @Sendable (CloseReason) -> Void) {
        let reason = state.withLock { state -> CloseReason? in
            guard let reason = state.closeReason else {
                state.onForcedClose = action
                return nil
            }
            return reason
        }
        if let reason, reason != .finished { action(reason) }
    }

    /// Queues a frame without waiting.
    /// - Returns: false when the outbox is closed (or has just closed because it was full).
    @discardableResult
    public func offer(_ frame: ByteBuffer) -> Bool {
        enum Outcome {
            case refused, full
            case queued(waking: CheckedContinuation<Void, Never>?)
        }
        let outcome = state.withLock { state -> Outcome in
            guard state.closeReason == nil else { return .refused }
            guard state.frames.count < capacity else { return .full }
            state.frames.append(frame)
            return .queued(waking: state.waiter.take())
        }
        switch outcome {
        case .refused:
            return false
        case .full:
            close(.slowConsumer)
            return false
        case .queued(let waiter):
            waiter?.resume()
            return true
        }
    }

    /// Waits for frames and returns every queued one, or the reason the outbox closed. Only
    /// the connection's writer calls this. Cancelling the waiting task closes the outbox.
    ///
    /// The frames are taken when the writer runs, not when it is woken: whatever arrives
    /// meanwhile (a burst of messages to this connection's chats) joins the same batch, which
    /// the writer sends with one system call.
    public func nextBatch() async -> Batch {
        await withTaskCancellationHandler {
            while true {
                if let batch = state.withLock({ $0.takeBatch() }) { return batch }
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let isReady = state.withLock { state in
                        guard state.closeReason == nil, state.frames.isEmpty else { return true }
                        state.waiter = continuation
                        return false
                    }
                    if isReady { continuation.resume() }
                }
            }
        } onCancel: {
            close(.finished)
        }
    }

    /// Stops taking frames; the writer stops after what it is writing. The first reason wins.
    public func close(_ reason: CloseReason) {
        let (waiter, forcedClose) = state.withLock {
            state -> (CheckedContinuation<Void, Never>?, (@Sendable (CloseReason) -> Void)?) in
            guard state.closeReason == nil else { return (nil, nil) }
            state.closeReason = reason
            state.frames.removeAll()
            return (state.waiter.take(), reason == .finished ? nil : state.onForcedClose.take())
        }
        waiter?.resume()
        forcedClose?(reason)
    }

    /// Whether the outbox has stopped taking frames.
    public var isClosed: Bool { state.withLock { $0.closeReason != nil } }
}
