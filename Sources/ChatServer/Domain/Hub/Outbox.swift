import ChatProtocol
import NIOCore
import Synchronization

/// Where one connection's frames go: its channel, written on the channel's event loop.
/// ``write(_:)`` and ``flush()`` are only called on ``eventLoop``.
public protocol FrameSink: Sendable {
    var eventLoop: any EventLoop { get }
    /// Whether the connection takes more frames now (its socket buffer is below its limit).
    var isWritable: Bool { get }
    /// Writes one server frame, without sending it yet.
    func write(_ frame: ByteBuffer)
    /// Sends everything written since the last flush, in one system call.
    func flush()
}

/// The bounded queue between the hub, which never waits, and one connection's socket.
///
/// `offer` is synchronous and cheap: it queues the frame and, when the queue was empty, asks
/// the connection's ``DeliveryLoop`` to drain it. The drain runs on the connection's event
/// loop, so a frame costs no task and no thread hop of its own, and everything offered until
/// the drain runs goes out with one flush. While the socket cannot take more (the client reads
/// slowly), frames wait here; when more than ``Limits`` wait the connection is too slow to keep
/// up: the outbox closes with ``CloseReason/slowConsumer`` and drops what it holds, and the
/// session closes the socket so the client can reconnect and `resume`.
public final class Outbox: Sendable {
    /// Why the outbox stopped taking frames.
    public enum CloseReason: Sendable, Equatable {
        /// The connection ended normally (its reader finished).
        case finished
        /// Too many frames or bytes were waiting.
        case slowConsumer
        /// The server closes the connection with this WebSocket close code.
        case closing(code: CloseCode, reason: String)
    }

    /// How much may wait for a slow connection before it is closed: whichever is reached first.
    public struct Limits: Sendable, Equatable {
        public var frames: Int
        public var bytes: Int

        public init(frames: Int, bytes: Int) {
            self.frames = frames
            self.bytes = bytes
        }
    }

    private struct State {
        var frames: [ByteBuffer] = []
        /// The array the last drain wrote from, emptied: the next batch reuses its storage.
        var spare: [ByteBuffer] = []
        var bytes = 0
        /// A drain is scheduled, or waits for the socket to become writable: offers need not
        /// ask for another.
        var drainPending = false
        var closeReason: CloseReason?
        var onForcedClose: (@Sendable (CloseReason) -> Void)?
    }

    public let limits: Limits
    let sink: any FrameSink
    private let delivery: DeliveryLoop
    private let state = Mutex(State())

    /// - Parameter delivery: the drains of `sink`'s event loop.
    public init(limits: Limits, sink: any FrameSink, delivery: DeliveryLoop) {
        precondition(delivery.eventLoop === sink.eventLoop, "an outbox drains on its sink's event loop")
        self.limits = limits
        self.sink = sink
        self.delivery = delivery
    }

    /// Registers what to do when the outbox is closed for any reason but ``CloseReason/finished``
    /// (the socket may no longer drain); runs at once if it already is.
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
        enum Outcome { case refused, full, queued, queuedFirst }
        let outcome = state.withLock { state -> Outcome in
            guard state.closeReason == nil else { return .refused }
            guard state.frames.count < limits.frames, state.bytes + frame.readableBytes <= limits.bytes else {
                return .full
            }
            state.frames.append(frame)
            state.bytes += frame.readableBytes
            guard !state.drainPending else { return .queued }
            state.drainPending = true
            return .queuedFirst
        }
        switch outcome {
        case .refused:
            return false
        case .full:
            close(.slowConsumer)
            return false
        case .queued:
            return true
        case .queuedFirst:
            delivery.schedule(self)
            return true
        }
    }

    /// Writes everything queued to the sink, unflushed; on the sink's event loop only. While the
    /// socket is not writable the frames stay queued, and the drain is left pending until
    /// ``writabilityChanged()``.
    /// - Returns: whether anything was written.
    func drain() -> Bool {
        guard sink.isWritable else { return false }
        var batch = state.withLock { state -> [ByteBuffer] in
            state.drainPending = false
            state.bytes = 0
            let queued = state.frames
            state.frames = state.spare
            state.spare = []
            return queued
        }
        guard !batch.isEmpty else { return false }
        for frame in batch { sink.write(frame) }
        batch.removeAll(keepingCapacity: true)
        state.withLock { $0.spare = batch }
        return true
    }

    /// Resumes a drain that waited for the socket; on the sink's event loop, when the channel's
    /// writability changed.
    public func writabilityChanged() {
        if drain() { sink.flush() }
    }

    /// Stops taking frames and drops what waits; the session then closes the socket. The
    /// first reason wins.
    public func close(_ reason: CloseReason) {
        let forcedClose = state.withLock { state -> (@Sendable (CloseReason) -> Void)? in
            guard state.closeReason == nil else { return nil }
            state.closeReason = reason
            state.frames.removeAll()
            state.bytes = 0
            // Taken in any case: the action may hold what holds this outbox.
            let action = state.onForcedClose.take()
            return reason == .finished ? nil : action
        }
        forcedClose?(reason)
    }

    /// Why the outbox stopped taking frames, or nil while it takes them.
    public var closeReason: CloseReason? { state.withLock { $0.closeReason } }

    /// Whether the outbox has stopped taking frames.
    public var isClosed: Bool { closeReason != nil }
}
