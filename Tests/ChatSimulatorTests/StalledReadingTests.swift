import NIOCore
import NIOPosix
import Testing

@testable import ChatSimulator

/// A device that stalls (the slow consumer of the fault runs) must get what its server still
/// sends, and the server's close, as soon as it reads again. The fault runs' failures had a
/// cause on the server's side (a close behind unsent frames, now a reset: `SlowConsumerTests`)
/// and two on chatsim's, checked here on the device's socket:
/// - Its receive buffer was shrunk on an open connection, below the window already offered:
///   the kernel dropped what arrived beyond it, and the server's retransmissions backed off.
/// - Its buffer held about two loopback segments. Once the device reads again, Linux offers
///   about half of the free space as its window, which can be less than one of the sender's
///   segments; the sender then waits for its zero-window probe timer, backed off while the
///   device stalled (the likely reason for one sampled failure: docs/reliability.md).
/// How much of the free space the kernel offers cannot be forced from here, so the test checks
/// the two conditions, in the fault run's scenario: a plain TCP sender fills the connection,
/// the device stalls until the sender's probes have backed off, the sender closes, and the
/// device reads to the end.
@Suite(.timeLimit(.minutes(2))) struct StalledReadingTests {
    /// Read before the stall, so that the receive window grows as it does under load.
    static let before = 32 << 20
    /// Sent while the device stalls: more than its receive buffer and the sender's together.
    static let during = 8 << 20

    @Test func aStalledDeviceReadsToTheEndOnceItReadsAgain() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let accepted = group.any().makePromise(of: (any Channel).self)
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                accepted.succeed(channel)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let reader = ByteCounter(eventLoop: group.any())
        let device = try await Device.bootstrap(on: reader.eventLoop, stalls: true)
            .channelInitializer { channel in channel.pipeline.addHandler(reader) }
            .connect(host: "127.0.0.1", port: try #require(listener.localAddress?.port)).get()
        let sender = try await accepted.futureResult.get()
        let senderSocket = try #require(sender as? any SocketOptionProvider)

        try await sender.writeAndFlush(Self.bytes(Self.before)).get()
        try await reader.received(Self.before)
        let offered = try await device.getOption(.socketOption(.so_rcvbuf)).get()
        try await device.eventLoop.submit { Device.stopReading(device) }.get()
        let stalled = try await device.getOption(.socketOption(.so_rcvbuf)).get()
        let segment = try await senderSocket.getTCPInfo().get().tcpi_snd_mss
        sender.writeAndFlush(Self.bytes(Self.during), promise: nil)
        // 0.2 + 0.4 + 0.8 + 1.6 s of a shut window.
        while try await senderSocket.getTCPInfo().get().tcpi_backoff < 4 {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await sender.close()
        try await device.eventLoop.submit {
            _ = device.setOption(.autoRead, value: true)
            device.read()
        }.get()
        try await device.closeFuture.get()

        #expect(stalled >= offered, "the device's receive buffer shrank from \(offered) to \(stalled) bytes")
        #expect(
            offered >= 4 * Int32(segment), "a receive buffer of \(offered) bytes holds too few \(segment)-byte segments"
        )
        #expect(try await reader.total() > Self.before)
        try await listener.close()
    }

    static func bytes(_ count: Int) -> ByteBuffer {
        ByteBuffer(repeating: 0x61, count: count)
    }
}

/// Counts the bytes a connection receives, and tells when a number of them has arrived.
private final class ByteCounter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let eventLoop: any EventLoop
    private var count = 0
    private var waiting: (count: Int, promise: EventLoopPromise<Void>)?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        count += unwrapInboundIn(data).readableBytes
        if let waiting, count >= waiting.count {
            self.waiting = nil
            waiting.promise.succeed()
        }
    }

    /// The bytes that have arrived.
    func total() async throws -> Int {
        try await eventLoop.submit { self.count }.get()
    }

    /// Returns once `expected` bytes in all have arrived.
    func received(_ expected: Int) async throws {
        try await eventLoop.flatSubmit {
            guard self.count < expected else { return self.eventLoop.makeSucceededVoidFuture() }
            let promise = self.eventLoop.makePromise(of: Void.self)
            self.waiting = (expected, promise)
            return promise.futureResult
        }.get()
    }
}
