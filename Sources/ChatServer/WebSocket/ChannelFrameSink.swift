import NIOCore

/// Writes a connection's outbox to its socket. The frames are complete WebSocket frames
/// (``FrameEncoding``), so they enter the pipeline at its head, past the WebSocket encoder;
/// close, ping and pong frames go through ``WebSocketConnectionHandler``, which runs the close
/// handshake.
struct ChannelFrameSink: FrameSink {
    let handler: NIOLoopBound<OutboxChannelHandler>

    var eventLoop: any EventLoop { handler.eventLoop }
    var isWritable: Bool { handler.value.isWritable }

    func write(_ frame: ByteBuffer) {
        handler.value.writeFrame(frame)
    }

    func flush() {
        handler.value.flushFrames()
    }

    /// Installs the handler first in `channel`'s pipeline and makes the connection's outbox,
    /// which drains through it.
    static func outbox(
        for channel: any Channel, limits: Outbox.Limits, delivery: DeliveryLoop
    ) async throws -> Outbox {
        try await channel.eventLoop.submit {
            let handler = OutboxChannelHandler()
            try channel.pipeline.syncOperations.addHandler(handler, position: .first)
            let sink = ChannelFrameSink(handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            let outbox = Outbox(limits: limits, sink: sink, delivery: delivery)
            handler.outbox = outbox
            return outbox
        }.get()
    }
}

/// Where a connection's outbox enters the pipeline: first, where the socket's bytes come in
/// and its writes go straight out. It resumes the outbox when the socket drained below the
/// channel's limit (see ``Outbox/drain()``) and passes every event on.
final class OutboxChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer

    var outbox: Outbox?
    private var context: ChannelHandlerContext?

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        outbox = nil  // the outbox holds this handler: a closed connection must free both
    }

    /// Writes a complete WebSocket frame toward the socket, past every other handler.
    func writeFrame(_ frame: ByteBuffer) {
        context?.write(NIOAny(frame), promise: nil)
    }

    func flushFrames() {
        context?.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        if context.channel.isWritable { outbox?.writabilityChanged() }
    }
}
