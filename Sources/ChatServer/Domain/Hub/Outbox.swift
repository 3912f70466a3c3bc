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
        var onForcedClose: (@Sendable (CloseReason) -> Void)?
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
            case refused, full, queued
            case handedTo(CheckedContinuation<Batch, Never>)
        }
        let outcome = state.withLock { state -> Outcome in
            guard state.closeReason == nil else { return .refused }
            guard state.frames.count < capacity else { return .full }
            if let waiter = state.waiter.take() { return .handedTo(waiter) }
            state.frames.append(frame)
            return .queued
        }
        switch outcome {
        case .refused:
            return false
        case .full:
            close(.slowConsumer)
            return false
        case .queued:
            return true
        case .handedTo(let waiter):
            waiter.resume(returning: .frames([frame]))
            return true
        }
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
        let (waiter, forcedClose) = state.withLock {
            state -> (CheckedContinuation<Batch, Never>?, (@Sendable (CloseReason) -> Void)?) in
            guard state.closeReason == nil else { return (nil, nil) }
            state.closeReason = reason
            state.frames.removeAll()
            return (state.waiter.take(), reason == .finished ? nil : state.onForcedClose.take())
        }
        waiter?.resume(returning: .closed(reason))
        forcedClose?(reason)
    }

    /// Whether the outbox has stopped taking frames.
    public var isClosed: Bool { state.withLock { $0.closeReason != nil } }
}
