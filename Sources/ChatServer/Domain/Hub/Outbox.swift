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
        var waiter: CheckedContinuation<Batch, Never>?
        var closeReason: CloseReason?
    }

    /// Most frames the outbox holds before its connection counts as a slow consumer.
    public let capacity: Int
    private let state: Mutex<State>

    public init(capacity: Int) {
        self.capacity = capacity
        self.state = Mutex(State(frames: CircularBuffer(initialCapacity: 16)))
    }

    /// Queues a frame without waiting.
    /// - Returns: false when the outbox is closed (or has just closed because it was full).
    @discardableResult
    public func offer(_ frame: ByteBuffer) -> Bool {
        let (accepted, wake) = state.withLock { state -> (Bool, (CheckedContinuation<Batch, Never>, Batch)?) in
            guard state.closeReason == nil else { return (false, nil) }
            guard state.frames.count < capacity else {
                state.closeReason = .slowConsumer
                state.frames.removeAll()
                return (false, state.waiter.take().map { ($0, .closed(.slowConsumer)) })
            }
            if let waiter = state.waiter.take() { return (true, (waiter, .frames([frame]))) }
            state.frames.append(frame)
            return (true, nil)
        }
        if let (waiter, batch) = wake { waiter.resume(returning: batch) }
        return accepted
    }

    /// Waits for frames and returns every queued one, or the reason the outbox closed. Only
    /// the connection's writer calls this. Cancelling the waiting task closes the outbox.
    public func nextBatch() async -> Batch {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Batch, Never>) in
                let ready = state.withLock { state -> Batch? in
                    if let reason = state.closeReason { return .closed(reason) }
                    if !state.frames.isEmpty {
                        defer { state.frames.removeAll(keepingCapacity: true) }
                        return .frames(Array(state.frames))
                    }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            close(.finished)
        }
    }

    /// Stops taking frames; the writer stops after what it is writing. The first reason wins.
    public func close(_ reason: CloseReason) {
        let waiter = state.withLock { state -> CheckedContinuation<Batch, Never>? in
            guard state.closeReason == nil else { return nil }
            state.closeReason = reason
            state.frames.removeAll()
            return state.waiter.take()
        }
        waiter?.resume(returning: .closed(reason))
    }

    /// Whether the outbox has stopped taking frames.
    public var isClosed: Bool { state.withLock { $0.closeReason != nil } }
}
