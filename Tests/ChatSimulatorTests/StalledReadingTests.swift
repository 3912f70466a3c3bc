import NIOCore
import NIOPosix
import Testing

@testable import ChatSimulator

/// A device that stalls (the slow consumer of the fault runs) must lose nothing in its kernel
/// while it stalls. Linux drops what arrives beyond a connection's receive buffer when the
/// buffer is made smaller than the window the connection has already offered; what it drops is
/// sent again only when the sender's retransmission timer fires, and that timer backs off
/// while the device stalls. In the fault runs the server's last frames and its close then came
/// later than chatsim waited for them (issue 18, item 1): chatsim shrank the buffer when the
/// device stalled. The kernel's per-socket drop count cannot show it, as it also counts the
/// sender's zero-window probes; so the test checks the cause: a plain TCP sender fills a
/// device's connection, the device stalls, is filled again and reads again, and its receive
/// buffer must never have become smaller.
@Suite(.timeLimit(.minutes(2))) struct StalledReadingTests {
    /// Read before the stall, so that the receive window grows as it does under load.
    static let before = 32 << 20
    /// Sent while the device stalls: more than its receive buffer and the sender's together.
    static let during = 8 << 20

    @Test func aStalledDeviceKeepsItsReceiveBuffer() async throws {
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

        try await sender.writeAndFlush(Self.bytes(Self.before)).get()
        try await reader.received(Self.before)
        let offered = try await device.getOption(.socketOption(.so_rcvbuf)).get()
        try await device.eventLoop.submit { Device.stopReading(device) }.get()
        let stalled = try await device.getOption(.socketOption(.so_rcvbuf)).get()
        sender.writeAndFlush(Self.bytes(Self.during), promise: nil)
        try await device.eventLoop.submit {
            _ = device.setOption(.autoRead, value: true)
            device.read()
        }.get()
        try await reader.received(Self.before + Self.during)

        #expect(stalled >= offered, "the device's receive buffer shrank from \(offered) to \(stalled) bytes")
        try await device.close()
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
