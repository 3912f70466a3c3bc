import ChatProtocol
import NIOCore
import Synchronization

/// The server's open client connections (HTTP and WebSocket), counted against a limit.
final class OpenConnections: Sendable {
    let limit: Int
    private let count = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts a new connection; false when it is one over the limit (it is counted anyway and
    /// must be released like the others).
    func open() -> Bool {
        count.wrappingAdd(1, ordering: .relaxed).newValue <= limit
    }

    func release() {
        count.subtract(1, ordering: .relaxed)
    }
}

/// First in every connection's pipeline: counts the connection while it is open and turns away
/// one over ``OpenConnections/limit`` with a `503` and `Retry-After` before reading anything
/// from it. A cap below the process's open-file limit keeps the server answering when flooded
/// with connections, where running out of file descriptors would fail `accept` (and the
/// database's connections) instead.
final class ConnectionLimit: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connections: OpenConnections
    private let metrics: ChatMetrics
    private var counted = false
    private var refused = false

    private static let body =
        #"{"error":{"code":""# + ErrorCode.tooManyConnections.rawValue
        + #"","message":"The server has too many connections; try again shortly."}}"#
    private static let refusal =
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
        + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"

    init(connections: OpenConnections, metrics: ChatMetrics) {
        self.connections = connections
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { count(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        count(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused connection's request is read and dropped.
        if !refused { context.fireChannelRead(data) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            counted = false
            connections.release()
        }
        context.fireChannelInactive()
    }

    private func count(context: ChannelHandlerContext) {
        guard !counted else { return }
        counted = true
        guard !connections.open() else { return }
        refused = true
        metrics.connectionRefused(.serverLimit)
        // Half-close after the answer and read on until the client hangs up (or a few
        // seconds pass): a full close with its request still arriving would reset the
        // connection, and a reset can destroy the 503 before the client reads it.
        let response = context.channel.allocator.buffer(string: Self.refusal)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(response)).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        }
    }
}
