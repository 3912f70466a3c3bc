import NIOCore

/// Closes a connection whose first request head (request line and headers) has not fully
/// arrived within `timeout` of connecting, with a `408` when part of it came. This is the
/// defence against slowloris, which holds connections by sending headers a byte at a time:
/// an idle timer never fires on such a connection, a deadline does. Bytes pass through
/// untouched; the handler removes itself once the head is complete (WebSocket connections
/// then live as long as they answer pings; HTTP keep-alive connections are closed by the idle
/// timeout).
final class RequestHeadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var receivedAnything = false
    /// The last bytes seen, enough to find a head's end split across reads.
    private var tail: [UInt8] = []

    private static let endOfHead: [UInt8] = Array("\r\n\r\n".utf8)
    private static let timedOut = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receivedAnything = true
        tail += unwrapInboundIn(data).readableBytesView
        let headIsComplete = tail.indices.contains { tail[$0...].starts(with: Self.endOfHead) }
        tail = Array(tail.suffix(Self.endOfHead.count - 1))
        context.fireChannelRead(data)
        if headIsComplete {
            deadline?.cancel()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    private func start(context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            guard handler.receivedAnything else { return context.close(promise: nil) }
            let response = context.channel.allocator.buffer(string: Self.timedOut)
            context.writeAndFlush(handler.wrapOutboundOut(response)).whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}
