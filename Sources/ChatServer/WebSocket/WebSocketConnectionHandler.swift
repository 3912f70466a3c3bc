import ChatProtocol
import Foundation
import NIOCore
import NIOWebSocket

/// What a WebSocket connection hands its client's messages to: the chat session. Every call
/// comes on the connection's event loop.
protocol WebSocketMessageHandler: AnyObject {
    /// A complete text message: its fragments joined, its UTF-8 checked.
    func receivedText(_ text: String)
    /// A complete binary message, which the chat protocol does not use.
    func receivedBinary()
    /// The connection started to close, from either side: it takes no more server frames.
    func closing()
    /// The connection is gone.
    func closed()
}

/// RFC 6455 on one connection after its handshake, in the channel pipeline: no task waits
/// on an idle connection. It joins fragments into messages and checks their size and UTF-8,
/// answers pings, pings the client and hangs up on one that stops answering, and runs the
/// close handshake. Protocol violations close the connection with the code RFC 6455 gives
/// them (frames NIO's decoder refuses are closed by NIO's `WebSocketProtocolErrorHandler`).
///
/// Server frames other than close, ping and pong do not pass here: the connection's outbox
/// writes them at the head of the pipeline (``ChannelFrameSink``). While its
/// ``WebSocketMessageHandler`` is busy, the handler stops reading from the socket, so a client
/// that sends faster than it is served waits in its own socket buffer.
final class WebSocketConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    struct Settings: Sendable {
        /// The largest message, its fragments joined.
        var maxMessageBytes: Int
        /// How often the server pings; a client that has not answered by the next ping is
        /// closed with 1001.
        var pingInterval: TimeAmount
        /// How long the server waits for the client's close frame after sending its own before
        /// it drops the TCP connection: a client that stopped reading never answers.
        var closeTimeout: TimeAmount
    }

    private enum Message {
        case text(String)
        case binary
    }

    private enum State {
        case open
        /// The server sent its close frame and waits for the client's.
        case closing
        case closed
    }

    private let settings: Settings
    private var context: ChannelHandlerContext?
    private var state = State.open
    /// Where complete messages go; until the session attaches, they wait in `early`.
    private var messages: (any WebSocketMessageHandler)?
    private var early: [Message] = []
    /// The message being received in fragments, and its opcode.
    private var fragments: (opcode: WebSocketOpcode, data: ByteBuffer)?
    /// Reading waits until the session attaches, and while it is busy.
    private var readingPaused = true
    private var readPending = false
    /// The payload of the ping the client has not answered yet.
    private var unansweredPing: ByteBuffer?
    private var pingTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?

    init(settings: Settings) {
        self.settings = settings
    }

    /// Hands the connection's messages to `handler` from now on, those that came before first.
    /// If the connection is already gone, the handler hears it at once.
    func attach(_ handler: any WebSocketMessageHandler) {
        if case .closed = state {
            early = []
            handler.closing()
            handler.closed()
            return
        }
        messages = handler
        for message in early { deliver(message) }
        early = []
        if case .open = state { resumeReading() } else { handler.closing() }
    }

    /// Stops reading from the socket until ``resumeReading()``.
    func pauseReading() {
        readingPaused = true
    }

    func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Starts the close handshake: sends a close frame with `code`, then waits for the
    /// client's until ``Settings/closeTimeout``. Does nothing once the connection is closing.
    func close(code: CloseCode, reason: String? = nil) {
        guard case .open = state, let context else { return }
        state = .closing
        fragments = nil
        early = []
        pingTimer?.cancel()
        messages?.closing()
        var data = context.channel.allocator.buffer(capacity: 2 + (reason?.utf8.count ?? 0))
        data.writeInteger(code.rawValue)
        if let reason { data.writeString(reason) }
        let loopBound = context.loopBound
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)))
            .whenFailure { _ in loopBound.value.close(promise: nil) }
        closeTimer = context.eventLoop.scheduleTask(in: settings.closeTimeout) { Self.hangUp(loopBound.value.channel) }
        // Read on, to see the client's close frame; data frames are ignored from now on.
        resumeReading()
    }

    /// Ends a connection whose client did not answer the close frame in time. One with frames
    /// still waiting to be written (a client that stopped reading) is reset: a plain close
    /// would leave them in the kernel (up to the socket's send buffer, megabytes), and the
    /// client would hear of the close only once TCP's retransmissions, backed off while it
    /// stalled, got through. The reset frees them at once and reaches the client as soon as it
    /// reads again (docs/reliability.md, the slow consumer that was not closed).
    private static func hangUp(_ channel: any Channel) {
        guard !channel.isWritable, let socket = channel as? any SocketOptionProvider else {
            return channel.close(promise: nil)
        }
        socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        schedulePing()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimers()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.maskKey != nil, frame.reservedBits.isEmpty else {
            // RFC 6455 §5.1: a server must close on an unmasked frame (NIO's decoder accepts them).
            close(code: .protocolError)
            return
        }
        switch frame.opcode {
        case .connectionClose:
            receivedClose(frame, context: context)
        case .ping:
            guard case .open = state else { return }
            context.writeAndFlush(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            if frame.unmaskedData == unansweredPing { unansweredPing = nil }
        case .text, .binary:
            guard case .open = state else { return }
            guard fragments == nil else { return close(code: .protocolError) }
            fragments = (frame.opcode, frame.unmaskedData)
            if frame.fin { completeMessage() }
        case .continuation:
            guard case .open = state else { return }
            guard let (opcode, buffered) = fragments else { return close(code: .protocolError) }
            fragments = nil
            var data = buffered
            guard data.readableBytes + frame.length <= settings.maxMessageBytes else {
                return close(code: .messageTooBig)
            }
            var more = frame.unmaskedData
            data.writeBuffer(&more)
            fragments = (opcode, data)
            if frame.fin { completeMessage() }
        default:
            close(code: .protocolError)
        }
    }

    func read(context: ChannelHandlerContext) {
        if readingPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // The server is shutting down: it waits for this connection's channel to close.
            close(code: .goingAway, reason: "server shutting down")
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO's protocol error handler has already sent the close frame for a frame its
        // decoder refused and closes the channel; anything else ends the connection too.
        if error is NIOWebSocketError {
            if case .open = state {
                state = .closing
                messages?.closing()
            }
        } else {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimers()
        if case .open = state { messages?.closing() }
        state = .closed
        messages?.closed()
        messages = nil
        context.fireChannelInactive()
    }

    // MARK: - Protocol

    private func completeMessage() {
        guard let (opcode, data) = fragments.take() else { return }
        switch opcode {
        case .text:
            guard let text = String(validating: data.readableBytesView, as: UTF8.self) else {
                return close(code: .invalidText)
            }
            deliver(.text(text))
        default:
            deliver(.binary)
        }
    }

    private func deliver(_ message: Message) {
        guard let messages else {
            early.append(message)
            return
        }
        switch message {
        case .text(let text): messages.receivedText(text)
        case .binary: messages.receivedBinary()
        }
    }

    /// Answers the client's close frame, or ends the handshake the server started, and hangs up.
    private func receivedClose(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        guard case .open = state else {
            context.close(promise: nil)
            return
        }
        state = .closing
        messages?.closing()
        var data = frame.unmaskedData
        let reply: CloseCode
        switch (data.readableBytes, data.readWebSocketErrorCode()) {
        case (0, _):
            reply = .normalClosure
        case (_, .some(.unknown(let code))) where code < 3000 || code > 4999:
            reply = .protocolError  // reserved, or a code no one may send (RFC 6455 §7.4.1)
        case (_, .some) where String(validating: data.readableBytesView, as: UTF8.self) != nil:
            reply = .normalClosure
        default:
            reply = .protocolError  // one byte, or a reason that is not UTF-8
        }
        var answer = context.channel.allocator.buffer(capacity: 2)
        answer.writeInteger(reply.rawValue)
        let loopBound = context.loopBound
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: answer)))
            .whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    private func schedulePing() {
        guard let context, settings.pingInterval > .zero else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        pingTimer = context.eventLoop.scheduleTask(in: settings.pingInterval) { handler.value.ping() }
    }

    /// Pings the client, or hangs up when it has not answered the last ping.
    private func ping() {
        guard case .open = state, let context else { return }
        guard unansweredPing == nil else {
            close(code: .goingAway, reason: "ping timeout")
            context.close(promise: nil)
            return
        }
        var payload = context.channel.allocator.buffer(capacity: 8)
        payload.writeInteger(UInt64.random(in: .min ... .max))
        unansweredPing = payload
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: payload)), promise: nil)
        schedulePing()
    }

    private func stopTimers() {
        pingTimer?.cancel()
        closeTimer?.cancel()
    }
}
