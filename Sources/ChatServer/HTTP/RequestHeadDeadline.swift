import NIOCore

/// Closes a connection whose request head (request line and headers) does not fully arrive
/// within `timeout`, with a `408` when part of it came. This is the defence against slowloris,
/// which holds connections by sending headers a byte at a time: an idle timer never fires on
/// such a connection, a deadline does.
///
/// The first head's deadline runs from the moment of connecting; a keep-alive connection's
/// later heads have theirs from their first byte (until then the idle timeout watches it).
/// Bytes pass through untouched. The handler sees only bytes, so it takes a flush of the
/// server's answer as the end of a request: what arrives after it starts the next head. A
/// WebSocket upgrade removes it: frames are no heads.
///
/// It also takes the server's notice to stop (`ChannelShouldQuiesceEvent`, sent to every
/// connection once) until the first request has made the connection HTTP or WebSocket, because
/// the handlers that act on the notice are not in the pipeline before. A connection with no
/// complete head yet is closed at once: nothing was asked, and otherwise it would hold the
/// server's shutdown until its deadline (a client's spare pooled connection does this). One
/// whose first request is being negotiated records the notice (``stopRequested``), and
/// ``WebSocketUpgradeChannel`` repeats it to the handlers it puts in place.
final class RequestHeadDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// Waiting for a head; the deadline runs once a byte of it came (or from connecting).
        case awaitingHead(receivedAnything: Bool)
        /// A head arrived: what follows is its body, until the server answers.
        case inRequest
    }

    private let timeout: TimeAmount
    private let metrics: ChatMetrics
    private var state = State.awaitingHead(receivedAnything: false)
    private var deadline: Scheduled<Void>?
    /// Whether a complete head has arrived since the connection opened.
    private var anyHeadArrived = false
    /// Whether the server asked the connection to finish once its first head had arrived.
    private(set) var stopRequested = false
    /// The last bytes seen, enough to find a head's end split across reads.
    private var tail: [UInt8] = []

    private static let endOfHead: [UInt8] = Array("\r\n\r\n".utf8)
    private static let timedOut = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

    init(timeout: TimeAmount, metrics: ChatMetrics) {
        self.timeout = timeout
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startDeadline(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startDeadline(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .awaitingHead = state {
            state = .awaitingHead(receivedAnything: true)
            startDeadline(context: context)
            tail += unwrapInboundIn(data).readableBytesView
            if tail.indices.contains(where: { tail[$0...].starts(with: Self.endOfHead) }) {
                state = .inRequest
                anyHeadArrived = true
                deadline?.cancel()
                deadline = nil
                tail = []
            } else {
                tail = Array(tail.suffix(Self.endOfHead.count - 1))
            }
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            guard anyHeadArrived else { return context.close(promise: nil) }
            stopRequested = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    func flush(context: ChannelHandlerContext) {
        if case .inRequest = state { state = .awaitingHead(receivedAnything: false) }
        context.flush()
    }

    private func startDeadline(context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.metrics.connectionRefused(.requestHeadTimeout)
            guard case .awaitingHead(receivedAnything: true) = handler.state else {
                return context.close(promise: nil)
            }
            let channel = context.channel
            let response = channel.allocator.buffer(string: Self.timedOut)
            context.writeAndFlush(handler.wrapOutboundOut(response)).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
