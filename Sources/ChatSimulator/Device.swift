import ChatProtocol
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// How a sending device paces itself.
public enum Pace: Sendable, Equatable {
    /// At most this many unanswered sends at a time: each answer lets the next send go.
    case window(Int)
    /// This many sends a second whatever the answers (at most ``Device/maxOutstanding`` unanswered).
    case rate(Double)
}

/// What a simulated device does besides receiving.
struct DeviceRole: Sendable {
    struct Sending: Sendable {
        /// The sender's number in client ids.
        var sender: Int
        /// The chats it sends to, in turn.
        var chats: [ChatID]
        var pace: Pace
        /// Characters of text per message.
        var messageSize: Int
        /// Whether a `typing` frame goes before each message.
        var types = false
    }

    var sending: Sending?
    /// Marks what it receives as read, at most once a chat per this many nanoseconds.
    var readInterval: UInt64?
    /// Stops reading while the run is measured (a slow consumer); its deliveries are left out
    /// of the latencies.
    var stallsWhileMeasuring = false
}

/// What a device observed, collected when the run ends.
struct DeviceObservations: Sendable {
    var streams: [Int64: ChatStream] = [:]
    var sendLog = SendLog()
    /// Send to delivery on another connection, microseconds, for sends in the measured window.
    var deliveryLatency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    /// The part of `deliveryLatency` from senders that started on another node.
    var crossNodeDeliveryLatency = Histogram<UInt64>(
        highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    /// Send to ack, microseconds, for sends in the measured window.
    var ackLatency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    /// From the attempt the server accepted (the last repeat of a send refused with
    /// `overloaded`) to its ack, microseconds, for sends in the measured window (before the
    /// rate change, when there is one).
    var acceptedAckLatency = Histogram<UInt64>(
        highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    /// Send to ack, microseconds, for sends made from 5 s after the rate change on.
    var settledAckLatency = Histogram<UInt64>(
        highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    /// Sends made while measuring.
    var sentWhileMeasuring = 0
    /// First acks (not repeats) received while measuring: messages stored.
    var ackedWhileMeasuring = 0
    /// `message` frames and first acks received while measuring.
    var framesWhileMeasuring = 0
    /// Messages for chats the device does not follow, or acks for sends it did not make.
    var strays = 0
    /// Errors that did not answer a send, by code.
    var otherErrors: [String: Int] = [:]
    /// Chats too far behind to `resume` after a reconnect, caught up through `/history`.
    var historyCatchUps = 0
    /// Reconnects whose `ready` named a new database generation: the database was restored,
    /// and the device dropped its positions and followed its chats afresh.
    var generationChanges = 0
    /// Connections that ended unasked and were reconnected (`--ride-out`).
    var connectionsLost = 0
    /// Sends refused with `storage_unavailable` and repeated with their client id (`--ride-out`).
    var sendsRepeated = 0
    /// Sends refused with `overloaded` and repeated with their client id after the
    /// `retry_after_ms` the server asked for.
    var sendsOverloaded = 0
    /// Sends refused with `rate_limited`, repeated the same way.
    var sendsRateLimited = 0
    /// Sends a rate-paced device did not make because it was backing off: it had refused
    /// sends waiting to be repeated, as a person waits for a message that did not go out
    /// before writing the next.
    var sendsHeldBack = 0
    /// Messages the device had not received when the run drained, and that arrived when it
    /// asked again (a `resume`, or `/history` for a device without a connection): late, not lost.
    var late = 0
    /// How late those were: from their send to their arrival, microseconds.
    var lateLatency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    /// Connections the server turned away with 1013 (try again later). A client answers
    /// that by reconnecting, so it is no failure by itself; whatever the device missed
    /// because of it shows in the check.
    var turnedAway = 0
}

/// A failure of the simulator's own making or of the server's answers to it.
public struct SimulationError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// One simulated device: a WebSocket connection of one user, reconnected when a scenario
/// drops it (or, riding out faults, whenever it ends unasked), receiving the user's chats and,
/// as a sender, sending into them.
///
/// The connection is a plain NIO pipeline and the device does its work in the channel
/// handler, on its event loop, without tasks or locks: the simulator must cost less than the
/// server it measures. Everything mutable is touched on `eventLoop` only, which is what makes
/// sharing the device safe.
final class Device: @unchecked Sendable {
    static let maxOutstanding = 10_000

    let index: Int
    let user: ServerAPI.User
    let role: DeviceRole
    let run: UInt32
    let control: RunControl
    let eventLoop: any EventLoop
    /// The index of the node this device connects to first.
    let node: Int
    /// With several nodes, the node each sender (by number) connects to first.
    private let senderNodes: [Int: Int]
    let progress = DeviceProgress()
    /// Called on the event loop when a ready connection ends unasked, to reconnect the device
    /// as a real client would; nil counts such an end as a failure.
    private let lost: (@Sendable (Device) -> Void)?

    private var observed = DeviceObservations()
    private var context: ChannelHandlerContext?
    /// The connection `stallReading` stopped reading, until `readAgain`.
    private var stalled: (any Channel)?
    private var readyPromise: EventLoopPromise<Void>?
    /// Whether the current connection got past `ready`.
    private var isReady = false
    /// Unanswered sends by number, kept to repeat them after a reconnect.
    private var pending: [Int: ByteBuffer] = [:]
    /// When each unanswered send was last written, monotonic nanoseconds.
    private var attempts: [Int: UInt64] = [:]
    /// Sends refused as `overloaded` or `rate_limited`, to be repeated together, in the order
    /// they were sent, when the device's pause ends. While there are any, a rate-paced device
    /// makes no new send.
    private var refusedForNow: [Int] = []
    /// The device's pause after such a refusal, milliseconds: the server's `retry_after_ms` at
    /// first, doubled (up to 5 s) each time a repeat is refused again, back to 0 on an ack.
    private var retryPause: Int64 = 0
    /// Whether the end of a pause is scheduled.
    private var pauseScheduled = false
    private var nextChat = 0
    private var sendingStarted = false
    private var pacing: RepeatedTask?
    /// Whether the coordinator is closing or dropping the connection (so its end is no failure).
    private var leaving = false
    /// Whether this side sent a close frame (so the server's is not answered again).
    fileprivate private(set) var closeSent = false
    private var closeCode: WebSocketErrorCode?
    private var lastRead: [Int64: UInt64] = [:]
    /// The database generation of the last `ready`.
    private var generation: String?
    /// Chats being resumed, in the order the resumes were sent, and the `seq` each must reach.
    private var resumes: [(chat: Int64, target: Int64)] = []
    /// While reconciling: the `seq`s of each chat the device had not received when the run
    /// drained. Each that arrives now is counted late.
    private var stillMissing: [Int64: Set<Int64>] = [:]
    /// Whether the run is reconciling: what arrives now counts as late, not in the latencies.
    private var reconciling = false
    /// Chats too far behind to `resume`: the `seq`s missed, to be read from `/history`.
    private var farBehind: [(chat: Int64, missed: ClosedRange<Int64>)] = []
    private var masks: SplitMix64
    private let padding: String

    init(
        index: Int, user: ServerAPI.User, role: DeviceRole, run: UInt32, control: RunControl, eventLoop: any EventLoop,
        node: Int = 0, senderNodes: [Int: Int] = [:], lost: (@Sendable (Device) -> Void)? = nil
    ) {
        self.index = index
        self.node = node
        self.senderNodes = senderNodes
        self.lost = lost
        self.user = user
        self.role = role
        self.run = run
        self.control = control
        self.eventLoop = eventLoop
        self.masks = SplitMix64(seed: UInt64(index) &* 0x9E37_79B9 &+ UInt64(run))
        self.padding = String(repeating: "x", count: max(1, role.sending?.messageSize ?? 1))
    }

    // MARK: Coordinator's side (any thread)

    /// Connects, or connects again, and returns once the server's `ready` was followed:
    /// streams started or `resume`s sent, unanswered sends repeated.
    func connect(to endpoint: Endpoint, from source: SocketAddress?, timeout: TimeAmount = .seconds(30)) async throws {
        let ready = eventLoop.makePromise(of: Void.self)
        try await eventLoop.submit {
            self.readyPromise = ready
            self.leaving = false
            self.closeSent = false
            self.closeCode = nil
        }.get()
        let deadline = eventLoop.scheduleTask(in: timeout) {
            self.completeReady(.failure(SimulationError("no ready frame within \(timeout)")))
            self.context?.close(promise: nil)
        }
        defer { deadline.cancel() }
        var bootstrap = Self.bootstrap(on: eventLoop, stalls: role.stallsWhileMeasuring).connectTimeout(timeout)
        if let source { bootstrap = bootstrap.bind(to: source) }
        do {
            let upgraded: EventLoopFuture<Bool> = try await bootstrap.connect(to: endpoint.address) { channel in
                channel.eventLoop.makeCompletedFuture { try self.configureUpgrade(of: channel, to: endpoint) }
            }
            guard try await upgraded.get() else { throw SimulationError("the server refused the WebSocket upgrade") }
            try await ready.futureResult.get()
        } catch {
            eventLoop.execute { self.completeReady(.failure(error)) }
            throw error
        }
    }

    /// Starts sending: a window at once (then one send per answer), or one send every 1/rate
    /// seconds from a random offset, so that senders do not all send in the same instant.
    func startSending() {
        eventLoop.execute {
            guard let sending = self.role.sending, !self.sendingStarted else { return }
            self.sendingStarted = true
            switch sending.pace {
            case .window(let size):
                for _ in 0..<size { self.sendNext() }
            case .rate(let rate):
                let interval = Int64(1e9 / max(rate, 0.001))
                let offset = Int64.random(in: 0..<max(interval, 1), using: &self.masks)
                self.pacing = self.eventLoop.scheduleRepeatedTask(
                    initialDelay: .nanoseconds(offset), delay: .nanoseconds(interval)
                ) { _ in
                    self.sendNext()
                    self.context?.flush()
                }
            }
            self.context?.flush()
        }
    }

    /// Switches a rate-paced sender to `rate` sends a second from now on.
    func changeRate(to rate: Double) {
        eventLoop.execute {
            guard case .rate = self.role.sending?.pace, let pacing = self.pacing else { return }
            pacing.cancel()
            let interval = Int64(1e9 / max(rate, 0.001))
            self.pacing = self.eventLoop.scheduleRepeatedTask(
                initialDelay: .nanoseconds(Int64.random(in: 0..<max(interval, 1), using: &self.masks)),
                delay: .nanoseconds(interval)
            ) { _ in
                self.sendNext()
                self.context?.flush()
            }
        }
    }

    /// Drops the connection at once, without a close frame, as a network failure would.
    func drop() async {
        let closed: EventLoopFuture<Void>? = try? await eventLoop.submit {
            self.leaving = true
            guard let context = self.context else { return nil }
            context.close(promise: nil)
            return context.channel.closeFuture
        }.get()
        try? await closed?.get()
    }

    /// Stops sending and closes the connection with a close frame (1000), waiting up to
    /// five seconds for the server's answer.
    func close() async {
        let closed: EventLoopFuture<Void>? = try? await eventLoop.submit {
            self.leaving = true
            self.pacing?.cancel()
            guard let context = self.context else { return nil }
            self.closeSent = true
            var code = context.channel.allocator.buffer(capacity: 2)
            code.write(webSocketErrorCode: .normalClosure)
            context.writeAndFlush(NIOAny(self.frame(.connectionClose, code)), promise: nil)
            let channel = context.channel
            channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
            return channel.closeFuture
        }.get()
        try? await closed?.get()
    }

    /// The bootstrap of a device's connections. One that will stall gets a receive buffer of
    /// its own size (``stalledReceiveBuffer``), so that the kernel does not soak up megabytes of
    /// frames while it stalls (loopback buffers grow to 32 MiB here) and the server's own
    /// limits are what is tested. The buffer is set before connecting: shrunk on an open
    /// connection, it would be smaller than the window already offered, and the kernel would
    /// drop what arrives beyond it.
    static func bootstrap(on eventLoop: any EventLoop, stalls: Bool) -> ClientBootstrap {
        let bootstrap = ClientBootstrap(group: eventLoop).channelOption(.tcpOption(.tcp_nodelay), value: 1)
        return stalls ? bootstrap.channelOption(.socketOption(.so_rcvbuf), value: stalledReceiveBuffer) : bootstrap
    }

    /// The receive buffer a stalling device asks for (the kernel doubles it): room for several
    /// of loopback's 64 KiB segments, as a real client's buffer would have. Once the device
    /// reads again, Linux offers about half of the buffer's free space as its window; with a
    /// buffer of about two segments that can be less than one of the server's, and a sender
    /// puts no part of a segment into a window too small for the whole of it, so it waits for
    /// its zero-window probe timer, backed off while the device stalled (the likely reason for
    /// one sampled failure: docs/reliability.md).
    static let stalledReceiveBuffer: SocketOptionValue = 256 << 10

    /// Stops reading from `channel`: what arrives waits in the kernel's receive buffer.
    static func stopReading(_ channel: any Channel) {
        _ = channel.setOption(.autoRead, value: false)
    }

    /// Stops reading from the connection, as a client that hangs or is swamped would.
    func stallReading() {
        eventLoop.execute {
            guard let channel = self.context?.channel else { return }
            self.stalled = channel
            Self.stopReading(channel)
        }
    }

    /// Reads again after `stallReading`: whatever the server sent meanwhile arrives, and
    /// returns when the connection has ended. The server should have closed it at its outbox
    /// limit: one still open 10 s later is closed here and counted as a failure. One that
    /// ended while stalled (a reset reaches a stalled socket) was replaced by a new connection
    /// already, and there is nothing to wait for.
    func readAgain() async {
        let channel: (any Channel)? = try? await eventLoop.submit {
            defer { self.stalled = nil }
            guard let context = self.context, let stalled = self.stalled, context.channel === stalled else {
                return nil
            }
            _ = context.channel.setOption(.autoRead, value: true)
            context.read()
            return context.channel
        }.get()
        guard let channel else { return }
        let timer = eventLoop.scheduleTask(in: .seconds(10)) {
            self.leaving = true
            self.progress.failure.withLock { $0 = "a slow consumer was not closed by the server" }
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
        timer.cancel()
    }

    /// The chats too far behind to `resume` since the last call, with the `seq`s missed.
    func takeFarBehind() async -> [(chat: Int64, missed: ClosedRange<Int64>)] {
        (try? await eventLoop.submit {
            defer { self.farBehind.removeAll() }
            return self.farBehind
        }.get()) ?? []
    }

    /// Records messages of `chat` read from `/history` to fill what a reconnect skipped.
    func fill(_ chat: Int64, with messages: [MessagePayload]) async {
        try? await eventLoop.submit {
            for message in messages {
                self.observed.streams[chat]?.received(
                    messageID: message.id.rawValue, updateSeq: message.updateSeq, isUpdate: false)
                self.arrived(chat: chat, seq: message.seq, clientID: message.clientID.flatMap(ClientID.init))
                self.observed.streams[chat]?.filled(
                    seq: message.seq, messageID: message.id.rawValue,
                    clientID: message.clientID.flatMap(ClientID.init), run: self.run)
            }
        }.get()
    }

    /// After the run drained: asks the server again for every message of its chats up to
    /// `acknowledged` (the highest acknowledged `seq` of each) that the device has not received,
    /// with a `resume` from before the first of them. Returns those still missing, by chat, so
    /// that the caller can read `/history` for a device that is not connected; from now on
    /// each that arrives is counted late.
    func reconcile(
        upTo acknowledged: [Int64: Int64]
    ) async -> (
        missing: [Int64: [ClosedRange<Int64>]], resumed: Bool
    ) {
        (try? await eventLoop.submit {
            self.reconciling = true
            var missing: [Int64: [ClosedRange<Int64>]] = [:]
            for (chat, stream) in self.observed.streams {
                let ranges = stream.neverReceived(upTo: acknowledged[chat] ?? stream.start)
                guard let first = ranges.first else { continue }
                missing[chat] = ranges
                self.stillMissing[chat] = Set(ranges.flatMap { $0 })
                guard self.context != nil, !stream.isResuming else { continue }
                self.observed.streams[chat]?.resuming(after: first.lowerBound - 1)
                self.resumes.append((chat, ranges.last!.upperBound))
                self.write(Self.resume(chat, after: first.lowerBound - 1, afterUpdate: stream.lastUpdate))
            }
            self.progress.resuming.store(self.resumes.count, ordering: .relaxed)
            self.context?.flush()
            return (missing, self.context != nil)
        }.get()) ?? ([:], false)
    }

    /// Counts a message that arrives while reconciling and was missing.
    private func arrived(chat: Int64, seq: Int64, clientID: ClientID?) {
        guard !stillMissing.isEmpty, stillMissing[chat]?.remove(seq) != nil else { return }
        observed.late += 1
        if let clientID, clientID.run == run {
            _ = observed.lateLatency.record((monotonicNanoseconds() &- clientID.sentAt) / 1000)
        }
    }

    /// What the device observed so far.
    func observations() async -> DeviceObservations {
        (try? await eventLoop.submit { self.observed }.get()) ?? DeviceObservations()
    }

    /// Its send → delivery latencies so far (``DeviceObservations/deliveryLatency``).
    func deliveryLatencySoFar() async -> Histogram<UInt64> {
        (try? await eventLoop.submit { self.observed.deliveryLatency }.get()) ?? DeviceObservations().deliveryLatency
    }

    // MARK: Connection (event loop)

    private func configureUpgrade(of channel: any Channel, to endpoint: Endpoint) throws -> EventLoopFuture<Bool> {
        let upgrader = NIOTypedWebSocketClientUpgrader<Bool>(maxFrameSize: 1 << 24) { channel, _ in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(DeviceHandler(device: self))
                return true
            }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: endpoint.hostHeader)
        headers.add(name: "Authorization", value: "Bearer \(user.token)")
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: endpoint.webSocketPath, headers: headers)
        let upgrade = NIOTypedHTTPClientUpgradeConfiguration<Bool>(
            upgradeRequestHead: head, upgraders: [upgrader],
            notUpgradingCompletionHandler: { channel in
                channel.close(promise: nil)
                return channel.eventLoop.makeSucceededFuture(false)
            })
        var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: upgrade)
        // The server's `ready` may arrive in the same read as its 101 response.
        configuration.leftOverBytesStrategy = .forwardBytes
        return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: configuration)
    }

    fileprivate func attached(_ context: ChannelHandlerContext) {
        self.context = context
    }

    fileprivate func detached() {
        context = nil
        let wasReady = isReady
        isReady = false
        progress.connected.store(false, ordering: .relaxed)
        completeReady(.failure(SimulationError("the connection closed before ready")))
        let unasked = !leaving && control.phase < .finished
        if closeCode == WebSocketErrorCode(codeNumber: Int(CloseCode.tryAgainLater.rawValue)) {
            observed.turnedAway += 1
        } else if unasked && lost == nil {
            let reason = closeCode.map { "closed by the server with \($0)" } ?? "the connection dropped"
            progress.failure.withLock { $0 = reason }
        }
        if unasked && wasReady, let lost {
            observed.connectionsLost += 1
            lost(self)
        }
    }

    fileprivate func serverClosed(_ code: WebSocketErrorCode?) {
        closeCode = code
    }

    private func completeReady(_ result: Result<Void, any Error>) {
        guard let promise = readyPromise else { return }
        readyPromise = nil
        promise.completeWith(result)
    }

    /// Handles a complete text frame.
    fileprivate func received(_ text: ByteBuffer) {
        let frame = text.withUnsafeReadableBytes { FrameScanner.scan($0) }
        switch frame.kind {
        case .message: delivered(frame)
        case .ack: acknowledged(frame)
        case .messageUpdated: updated(frame)
        case .resumed: resumeEnded(frame)
        case .ready: follow(text)
        case .error: refused(text)
        case .other: break
        }
    }

    private func follow(_ text: ByteBuffer) {
        guard case .ready(let ready)? = try? JSONDecoder().decode(ServerFrame.self, from: Data(text.readableBytesView))
        else {
            completeReady(.failure(SimulationError("the ready frame did not decode")))
            context?.close(promise: nil)
            return
        }
        resumes.removeAll()
        if let known = generation, known != ready.generation {
            // Restored from a backup: the seqs held now name other messages (docs/protocol.md,
            // "After a restore"). Follow every chat afresh from where it now stands.
            observed.generationChanges += 1
            observed.streams.removeAll()
            farBehind.removeAll()
        }
        generation = ready.generation
        for chat in ready.chats {
            let id = chat.id.rawValue
            guard var stream = observed.streams[id] else {
                observed.streams[id] = ChatStream(after: chat.lastSeq, lastUpdate: chat.lastUpdate)
                continue
            }
            let have = stream.last
            stream.reconnected(liveAfter: chat.lastSeq)
            // Missed messages, or only edits and deletions of messages it has.
            if chat.lastSeq > have || chat.lastUpdate > stream.lastUpdate {
                if chat.lastSeq - have <= Int64(ready.resumeLimit) {
                    stream.resuming(after: have)
                    resumes.append((id, chat.lastSeq))
                    write(Self.resume(id, after: have, afterUpdate: stream.lastUpdate))
                } else {
                    observed.historyCatchUps += 1
                    farBehind.append((id, (have + 1)...chat.lastSeq))
                }
            }
            observed.streams[id] = stream
        }
        progress.resuming.store(resumes.count, ordering: .relaxed)
        // Repeat unanswered sends with their client ids: each is stored once, whatever
        // happened to the first attempt.
        let now = monotonicNanoseconds()
        refusedForNow.removeAll()
        for number in pending.keys.sorted() {
            attempts[number] = now
            write(pending[number]!)
        }
        if case .window(let size)? = role.sending?.pace, sendingStarted {
            for _ in pending.count..<max(size, pending.count) { sendNext() }
        }
        isReady = true
        progress.connected.store(true, ordering: .relaxed)
        completeReady(.success(()))
    }

    private func delivered(_ frame: ScannedFrame) {
        guard let chat = frame.chatID, let seq = frame.seq, let messageID = frame.messageID,
            observed.streams[chat] != nil
        else {
            observed.strays += 1
            return
        }
        observed.streams[chat]!.received(messageID: messageID, updateSeq: frame.updateSeq, isUpdate: false)
        let crossNode = frame.clientID.flatMap { senderNodes[$0.sender] }.map { $0 != node } ?? false
        record(
            chat: chat, seq: seq, messageID: messageID, clientID: frame.clientID, latency: \.deliveryLatency,
            crossNode: crossNode)
        if let interval = role.readInterval {
            let now = monotonicNanoseconds()
            if now &- (lastRead[chat] ?? 0) >= interval {
                lastRead[chat] = now
                write(#"{"type":"read","chat_id":\#(chat),"seq":\#(seq)}"#)
            }
        }
    }

    /// An edit or deletion: the message's state now.
    private func updated(_ frame: ScannedFrame) {
        guard let chat = frame.chatID, let messageID = frame.messageID, observed.streams[chat] != nil else {
            observed.strays += 1
            return
        }
        observed.streams[chat]!.received(messageID: messageID, updateSeq: frame.updateSeq, isUpdate: true)
    }

    /// The end of a `resume`: one that brought no message (only edits, or nothing) is done too.
    private func resumeEnded(_ frame: ScannedFrame) {
        guard let chat = frame.chatID, let index = resumes.firstIndex(where: { $0.chat == chat }) else { return }
        if observed.streams[chat]?.isResuming == true { observed.streams[chat]?.resumeRefused() }
        resumes.remove(at: index)
        progress.resuming.store(resumes.count, ordering: .relaxed)
    }

    /// A `resume` frame: the messages after `afterSeq`, and the edits and deletions after `afterUpdate`.
    private static func resume(_ chat: Int64, after afterSeq: Int64, afterUpdate: Int64) -> String {
        #"{"type":"resume","chat_id":\#(chat),"after_seq":\#(afterSeq),"after_update":\#(afterUpdate)}"#
    }

    private func acknowledged(_ frame: ScannedFrame) {
        guard let chat = frame.chatID, let seq = frame.seq, let messageID = frame.messageID,
            let clientID = frame.clientID, clientID.run == run, clientID.sender == role.sending?.sender,
            observed.streams[chat] != nil
        else {
            observed.strays += 1
            return
        }
        observed.streams[chat]!.received(messageID: messageID, updateSeq: frame.updateSeq, isUpdate: false)
        let first = observed.sendLog.acked(
            number: clientID.number, SendLog.Ack(messageID: messageID, chatID: chat, seq: seq),
            duplicate: frame.duplicate)
        let attempted = attempts.removeValue(forKey: clientID.number)
        answered(clientID.number)
        if refusedForNow.isEmpty && !pauseScheduled { retryPause = 0 }
        // A send's first ack is its delivery to this device, even one marked duplicate: an
        // earlier attempt can have been stored without anyone being told (the database failed
        // before the server learned it), and the retry's ack is how this device gets the seq.
        if first && !observed.streams[chat]!.holds(seq) {
            progress.acked.add(1, ordering: .relaxed)
            if control.phase == .measuring { observed.ackedWhileMeasuring += 1 }
            if !observed.streams[chat]!.resumeBrings(seq) {
                record(chat: chat, seq: seq, messageID: messageID, clientID: clientID, latency: \.ackLatency)
            }
            if let attempted, !role.stallsWhileMeasuring, control.isMeasured(sentAt: clientID.sentAt) {
                let now = monotonicNanoseconds()
                switch control.sinceRateChange(sentAt: clientID.sentAt) {
                case .before: _ = observed.acceptedAckLatency.record((now &- attempted) / 1000)
                case .settling: break
                case .settled: _ = observed.settledAckLatency.record((now &- clientID.sentAt) / 1000)
                }
            }
        }
        if case .window = role.sending?.pace { sendNext() }
    }

    private func record(
        chat: Int64, seq: Int64, messageID: Int64, clientID: ClientID?,
        latency: WritableKeyPath<DeviceObservations, Histogram<UInt64>>, crossNode: Bool = false
    ) {
        // While reconciling, a `resume` may bring again what arrived live meanwhile: not a repeat.
        if reconciling, observed.streams[chat]!.holds(seq) { return }
        arrived(chat: chat, seq: seq, clientID: clientID)
        observed.streams[chat]!.record(seq: seq, messageID: messageID, clientID: clientID, run: run)
        progress.received.add(1, ordering: .relaxed)
        if control.phase == .measuring { observed.framesWhileMeasuring += 1 }
        if let clientID, clientID.run == run, !role.stallsWhileMeasuring, !reconciling,
            control.isMeasured(sentAt: clientID.sentAt)
        {
            let microseconds = (monotonicNanoseconds() &- clientID.sentAt) / 1000
            _ = observed[keyPath: latency].record(microseconds)
            if crossNode { _ = observed.crossNodeDeliveryLatency.record(microseconds) }
        }
        if !resumes.isEmpty, let index = resumes.firstIndex(where: { $0.chat == chat }),
            let stream = observed.streams[chat], !stream.isResuming, stream.last >= resumes[index].target
        {
            resumes.remove(at: index)
            progress.resuming.store(resumes.count, ordering: .relaxed)
        }
    }

    private func refused(_ text: ByteBuffer) {
        guard
            case .error(let code, _, let ref, let retryAfterMs, _)? = try? JSONDecoder().decode(
                ServerFrame.self, from: Data(text.readableBytesView))
        else { return }
        if let clientID = ref.flatMap(ClientID.init), clientID.run == run, let send = pending[clientID.number] {
            if code == ErrorCode.overloaded.rawValue || code == ErrorCode.rateLimited.rawValue,
                let connection = context?.channel
            {
                // Nothing was stored: repeat it later, with the others refused meanwhile.
                if code == ErrorCode.overloaded.rawValue {
                    observed.sendsOverloaded += 1
                } else {
                    observed.sendsRateLimited += 1
                }
                refusedForNow.append(clientID.number)
                backOff(retryAfterMs: retryAfterMs ?? 100, on: connection)
                return
            }
            if code == ErrorCode.storageUnavailable.rawValue, lost != nil, let connection = context?.channel {
                // Riding out an outage, as a client would: the same send again after a pause.
                // Stored or not the first time, it is stored once.
                observed.sendsRepeated += 1
                let pause = Int64.random(in: 100...500, using: &masks)
                eventLoop.scheduleTask(in: .milliseconds(pause)) {
                    guard self.context?.channel === connection, self.pending[clientID.number] != nil else { return }
                    self.write(send)
                    connection.flush()
                }
                return
            }
            observed.sendLog.refused(number: clientID.number, code: code)
            answered(clientID.number)
            if case .window = role.sending?.pace { sendNext() }
        } else if ref == "resume",
            let index = resumes.firstIndex(where: { observed.streams[$0.chat]?.isResuming == true })
        {
            let chat = resumes[index].chat
            observed.otherErrors[code, default: 0] += 1
            if code == ErrorCode.storageUnavailable.rawValue, let position = observed.streams[chat]?.resumePosition,
                let connection = context?.channel
            {
                // "Try again later": as a client would, resume again after a pause, on this
                // connection if it still stands (a new one resumes by itself).
                let pause = Int64.random(in: 100...500, using: &masks)
                eventLoop.scheduleTask(in: .milliseconds(pause)) {
                    guard self.context?.channel === connection else { return }
                    self.write(
                        Self.resume(chat, after: position, afterUpdate: self.observed.streams[chat]?.lastUpdate ?? 0))
                    connection.flush()
                }
                return
            }
            observed.streams[chat]?.resumeRefused()
            resumes.remove(at: index)
            progress.resuming.store(resumes.count, ordering: .relaxed)
        } else {
            observed.otherErrors[code, default: 0] += 1
        }
    }

    /// Pauses after an `overloaded` or `rate_limited` refusal, as a well-behaved client does:
    /// no new send and no repeat until the pause ends, then every refused send again at once,
    /// in the order sent (docs/protocol.md, "Keeping the order typed"). Refusals of sends that
    /// were already on their way join the same pause; a repeat refused again doubles it.
    private func backOff(retryAfterMs: Int, on connection: any Channel) {
        guard !pauseScheduled else { return }
        pauseScheduled = true
        let asked = Int64(max(retryAfterMs, 1))
        retryPause = retryPause == 0 ? asked : min(max(retryPause * 2, asked), 5000)
        let pause = retryPause + Int64.random(in: 0...(retryPause / 2), using: &masks)
        eventLoop.scheduleTask(in: .milliseconds(pause)) {
            self.pauseScheduled = false
            let refused = self.refusedForNow
            self.refusedForNow.removeAll()
            // A new connection repeats every unanswered send by itself.
            guard self.context?.channel === connection else { return }
            let now = monotonicNanoseconds()
            for number in refused {
                guard let send = self.pending[number] else { continue }
                self.attempts[number] = now
                self.write(send)
            }
            connection.flush()
        }
    }

    private func answered(_ number: Int) {
        attempts[number] = nil
        if pending.removeValue(forKey: number) != nil { progress.outstanding.subtract(1, ordering: .relaxed) }
    }

    /// Makes the next send, unless the run stopped sending, the device is not connected or too
    /// many sends are unanswered.
    private func sendNext() {
        guard let sending = role.sending, let context, control.phase == .warmup || control.phase == .measuring,
            pending.count < Self.maxOutstanding
        else { return }
        if case .rate = sending.pace, !refusedForNow.isEmpty {
            if control.phase == .measuring { observed.sendsHeldBack += 1 }
            return
        }
        let number = observed.sendLog.nextNumber()
        let chat = sending.chats[nextChat % sending.chats.count].rawValue
        nextChat += 1
        let clientID = ClientID(run: run, sender: sending.sender, number: number, sentAt: monotonicNanoseconds())
        if sending.types { write(#"{"type":"typing","chat_id":\#(chat)}"#) }
        // Written by hand: encoding a Codable frame per send costs more than the send.
        var buffer = context.channel.allocator.buffer(capacity: 96 + padding.utf8.count)
        buffer.writeString(#"{"type":"send","chat_id":\#(chat),"client_id":"\#(clientID.text)","text":""#)
        buffer.writeString(padding)
        buffer.writeString(#""}"#)
        pending[number] = buffer
        attempts[number] = clientID.sentAt
        progress.outstanding.add(1, ordering: .relaxed)
        if control.phase == .measuring { observed.sentWhileMeasuring += 1 }
        write(buffer)
    }

    private func write(_ text: String) {
        guard let context else { return }
        write(context.channel.allocator.buffer(string: text))
    }

    /// Queues a text frame; the handler flushes at the end of each read, and the pacing timer
    /// after each send.
    private func write(_ text: ByteBuffer) {
        context?.write(NIOAny(frame(.text, text)), promise: nil)
    }

    /// A client frame, masked as RFC 6455 requires (with a cheap generator: the mask guards
    /// proxies' caches, not secrets).
    fileprivate func frame(_ opcode: WebSocketOpcode, _ data: ByteBuffer) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(using: &masks), data: data)
    }
}

/// The handler of one connection of a device: reassembles text frames, answers pings and
/// close frames, and passes the rest to the device.
private final class DeviceHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let device: Device
    private var fragments: ByteBuffer?

    init(device: Device) {
        self.device = device
    }

    func handlerAdded(context: ChannelHandlerContext) {
        device.attached(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text where frame.fin:
            device.received(frame.unmaskedData)
        case .text:
            fragments = frame.unmaskedData
        case .continuation:
            guard var buffered = fragments else { return }
            var data = frame.unmaskedData
            buffered.writeBuffer(&data)
            fragments = frame.fin ? nil : buffered
            if frame.fin { device.received(buffered) }
        case .ping:
            context.write(wrapOutboundOut(device.frame(.pong, frame.unmaskedData)), promise: nil)
        case .connectionClose:
            var data = frame.unmaskedData
            device.serverClosed(data.readWebSocketErrorCode())
            if device.closeSent {
                context.close(promise: nil)
            } else {
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(device.frame(.connectionClose, frame.unmaskedData)))
                    .whenComplete { _ in channel.close(promise: nil) }
            }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        device.detached()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A small, fast pseudo-random generator for masking keys and jitter.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
