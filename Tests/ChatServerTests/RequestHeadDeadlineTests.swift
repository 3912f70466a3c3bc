import NIOCore
import NIOEmbedded
import Testing

@testable import ChatServer

/// The server's notice to stop, before a connection's first request has made it HTTP or
/// WebSocket (the live cases are in `WebSocketWireTests`).
@Suite("Request head deadline")
struct RequestHeadDeadlineTests {
    /// Counts the user events that reach it.
    final class EventRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var events = 0

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            events += 1
        }
    }

    @Test func aConnectionWithoutAHeadIsClosedWhenTheServerStops() throws {
        let (channel, deadline, _) = try Self.connection()
        try channel.writeInbound(ByteBuffer(string: "GET /health/live HTTP/1.1\r\nHost: 12"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!channel.isActive)
        #expect(!deadline.stopRequested)
    }

    /// Its first request is being negotiated: the handlers that act on the notice come after,
    /// and hear it again from `WebSocketUpgradeChannel` (``RequestHeadDeadline/stopRequested``).
    @Test func aConnectionWhoseFirstHeadArrivedRecordsTheNotice() throws {
        let (channel, deadline, recorder) = try Self.connection()
        try channel.writeInbound(ByteBuffer(string: "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(channel.isActive)
        #expect(deadline.stopRequested)
        #expect(recorder.events == 1)
        _ = try channel.finish()
    }

    private static func connection() throws -> (EmbeddedChannel, RequestHeadDeadline, EventRecorder) {
        let channel = EmbeddedChannel()
        let deadline = RequestHeadDeadline(timeout: .hours(1), metrics: Telemetry().metrics)
        let recorder = EventRecorder()
        try channel.pipeline.syncOperations.addHandlers(deadline, recorder)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, deadline, recorder)
    }
}
