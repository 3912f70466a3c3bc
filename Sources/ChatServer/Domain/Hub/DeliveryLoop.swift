import NIOCore
import Synchronization

/// Drains the outboxes of the connections on one event loop.
///
/// An outbox that gets a frame while empty asks for a drain; the first such request since the
/// last job schedules one job on the loop, and that job drains every outbox that asked
/// meanwhile, writing each one's frames and then flushing each channel once. A publication to
/// a chat of 50 members on two loops therefore costs two jobs, not 50, and a burst of
/// publications shares them too.
public final class DeliveryLoop: Sendable {
    public let eventLoop: any EventLoop

    private struct Pending {
        var outboxes: [Outbox] = []
        /// The array the last job drained, emptied: the next one reuses its storage.
        var spare: [Outbox] = []
        var isScheduled = false
    }

    private let pending = Mutex(Pending())

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Drains `outbox` in the loop's next job.
    func schedule(_ outbox: Outbox) {
        let isFirst = pending.withLock { pending in
            pending.outboxes.append(outbox)
            defer { pending.isScheduled = true }
            return !pending.isScheduled
        }
        if isFirst { eventLoop.execute { self.run() } }
    }

    private func run() {
        var outboxes = pending.withLock { pending in
            pending.isScheduled = false
            let asked = pending.outboxes
            pending.outboxes = pending.spare
            pending.spare = []
            return asked
        }
        for outbox in outboxes where outbox.drain() { outbox.sink.flush() }
        outboxes.removeAll(keepingCapacity: true)
        pending.withLock { $0.spare = outboxes }
    }
}

/// The ``DeliveryLoop`` of each event loop that serves connections.
public final class DeliveryLoops: Sendable {
    private let loops = Mutex<[ObjectIdentifier: DeliveryLoop]>([:])

    public init() {}

    /// The delivery loop of `eventLoop`, made on first use.
    public func loop(for eventLoop: any EventLoop) -> DeliveryLoop {
        loops.withLock { loops in
            if let loop = loops[ObjectIdentifier(eventLoop)] { return loop }
            let loop = DeliveryLoop(eventLoop: eventLoop)
            loops[ObjectIdentifier(eventLoop)] = loop
            return loop
        }
    }
}
