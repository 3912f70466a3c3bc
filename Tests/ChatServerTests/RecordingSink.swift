import ChatProtocol
import Foundation
import NIOCore
import NIOPosix
import Synchronization

@testable import ChatServer

/// A ``FrameSink`` that records what its outbox would have sent, flush by flush, for tests of
/// the hub and the outbox without a network. It can play a full socket (``isWritable``).
final class RecordingSink: FrameSink {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()) {
        self.eventLoop = eventLoop
    }

    private struct State {
        var unflushed: [ByteBuffer] = []
        var batches: [[ByteBuffer]] = []
        var waiter: CheckedContinuation<Void, Never>?
        var isWritable = true
    }

    private let state = Mutex(State())

    var isWritable: Bool { state.withLock { $0.isWritable } }

    func write(_ frame: ByteBuffer) {
        state.withLock { $0.unflushed.append(frame) }
    }

    func flush() {
        let waiter = state.withLock { state in
            state.batches.append(state.unflushed)
            state.unflushed = []
            return state.waiter.take()
        }
        waiter?.resume()
    }

    /// Plays a socket that fills up (false) or drains again (true), as the channel would tell
    /// the outbox.
    func setWritable(_ isWritable: Bool, outbox: Outbox) async throws {
        state.withLock { $0.isWritable = isWritable }
        if isWritable { try await eventLoop.submit { outbox.writabilityChanged() }.get() }
    }

    /// Wakes a waiting ``next(of:)`` (the outbox closed).
    func wake() {
        state.withLock { $0.waiter.take() }?.resume()
    }

    /// What the outbox's next flush sent, or why the outbox closed.
    func next(of outbox: Outbox) async -> Batch {
        while true {
            if let reason = outbox.closeReason { return .closed(reason) }
            let batch = state.withLock { state -> [ByteBuffer]? in
                state.batches.isEmpty ? nil : state.batches.removeFirst()
            }
            if let batch { return .frames(batch) }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let isReady = state.withLock { state in
                    guard state.batches.isEmpty, outbox.closeReason == nil else { return true }
                    state.waiter = continuation
                    return false
                }
                if isReady { continuation.resume() }
            }
        }
    }

    enum Batch {
        case frames([ByteBuffer])
        case closed(Outbox.CloseReason)
    }
}

extension Outbox {
    /// An outbox whose frames go to a ``RecordingSink``, which ``nextBatch()`` reads.
    static func recording(frames: Int = 100, bytes: Int = 1 << 20) -> Outbox {
        let sink = RecordingSink()
        let outbox = Outbox(
            limits: Limits(frames: frames, bytes: bytes), sink: sink,
            delivery: DeliveryLoop(eventLoop: sink.eventLoop))
        outbox.onForcedClose { _ in sink.wake() }
        return outbox
    }

    var recorder: RecordingSink { sink as! RecordingSink }

    /// The frames of the next flush, or why the outbox closed.
    func nextBatch() async -> RecordingSink.Batch {
        await recorder.next(of: self)
    }
}

extension FrameEncoding {
    /// The JSON inside a frame ``encode(_:)`` made (after its WebSocket header).
    static func json(of wire: ByteBuffer) -> ByteBuffer {
        var wire = wire
        guard let length = wire.getInteger(at: wire.readerIndex + 1, as: UInt8.self) else { return ByteBuffer() }
        let header =
            switch length {
            case 126: 4
            case 127: 10
            default: 2
            }
        wire.moveReaderIndex(forwardBy: min(header, wire.readableBytes))
        return wire
    }

    /// The server frame ``encode(_:)`` made.
    static func decode(_ wire: ByteBuffer) throws -> ServerFrame {
        try JSONDecoder().decode(ServerFrame.self, from: Data(json(of: wire).readableBytesView))
    }
}
