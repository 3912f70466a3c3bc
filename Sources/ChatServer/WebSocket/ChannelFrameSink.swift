import NIOCore
import NIOWebSocket

/// Writes a connection's outbox to its channel as WebSocket text frames. The writes pass no
/// WebSocket extension (the server negotiates none); close frames go through WSCore's writer
/// so that its close handshake sees them.
struct ChannelFrameSink: FrameSink {
    let channel: any Channel

    var eventLoop: any EventLoop { channel.eventLoop }
    var isWritable: Bool { channel.isWritable }

    func write(_ frame: ByteBuffer) {
        channel.write(WebSocketFrame(fin: true, opcode: .text, data: frame), promise: nil)
    }

    func flush() {
        channel.flush()
    }
}

/// Resumes a connection's outbox when its socket drained below the channel's limit (see
/// ``Outbox/drain()``). It sits first in the pipeline, where the socket's bytes come in, and
/// passes every event on.
final class OutboxWritabilityHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let outbox: Outbox

    init(outbox: Outbox) {
        self.outbox = outbox
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        if context.channel.isWritable { outbox.writabilityChanged() }
    }
}
