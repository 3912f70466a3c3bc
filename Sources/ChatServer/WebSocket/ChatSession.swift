import ChatProtocol
import Foundation
import Logging
import NIOCore
import NIOWebSocket
import WSCore

/// One WebSocket connection: sends `ready`, then reads client frames until either side
/// closes. Server frames go through the connection's ``Outbox``, which its event loop drains;
/// the reader and the closer (which waits for the outbox to close) are the two tasks of one
/// task group, and the first to finish ends the other.
struct ChatSession {
    let session: Session
    let narrowedTo: ChatID?
    let chats: ChatService
    let hub: ChatHub
    /// Where this connection's sends go: stored, published, acknowledged.
    let sends: LiveSend
    /// Where its `resume`s are served.
    let resumes: LiveResume
    /// Where read markers, typing and presence are announced: this node's hub, and with
    /// several nodes the others too.
    let events: any ChatEvents
    /// What the send rate and the typing throttle read the time from.
    let stopwatch: Stopwatch
    /// The database generation `ready` announces (``ReadyPayload/generation``).
    let generation: String
    let settings: WebSocketSettings
    let metrics: ChatMetrics
    let logger: Logger

    /// How long a connection closed by the server (too slow, or its session revoked) has to
    /// take its close frame before the server drops the TCP connection: a client that stopped
    /// reading would otherwise keep its close frame waiting behind a full socket.
    static let hangUpGrace: TimeAmount = .seconds(5)

    /// The close reason (with ``CloseCode/sessionEnded``) when the session's token expires.
    static let expiredReason = "session expired"

    func run(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel,
        shutdown: ShutdownSignal
    ) async throws {
        let user = session.user
        let outbox = try await ChannelFrameSink.outbox(
            for: channel, limits: settings.outboxLimits, delivery: hub.deliveryLoops.loop(for: channel.eventLoop))
        let connection = ChatConnection(
            userID: user.id, tokenID: session.token.tokenID, narrowedTo: narrowedTo, outbox: outbox)
        connection.outbox.onForcedClose { [metrics] reason in
            if reason == .slowConsumer { metrics.slowConsumerClosed() }
            channel.eventLoop.scheduleTask(in: Self.hangUpGrace) { channel.close(promise: nil) }
        }
        shutdown.onShutdown { [outbox = connection.outbox] in
            outbox.close(.closing(code: CloseCode.goingAway.rawValue, reason: "server shutting down"))
        }
        // A socket does not outlive its token: at expiry it ends as a logged-out session does.
        let untilExpiry = max(0, session.token.expiresAt.timeIntervalSinceNow)
        let expiry = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(untilExpiry * 1000))) {
            [outbox = connection.outbox] in
            outbox.close(.closing(code: CloseCode.sessionEnded.rawValue, reason: Self.expiredReason))
        }
        defer { expiry.cancel() }
        let details: [ChatDetails]
        do {
            details = try await chats.chatDetails(for: user.id).filter { connection.accepts($0.chat.id) }
        } catch ChatError.storageUnavailable {
            // A reconnect storm can outrun the database: the client should come back shortly.
            metrics.connectionRefused(.databaseUnavailable)
            try await outbound.close(
                WebSocketErrorCode(codeNumber: Int(CloseCode.tryAgainLater.rawValue)),
                reason: "database busy or unavailable")
            return
        }
        let joined: (positions: [ChatID: Int64], cameOnline: Bool)
        do {
            joined = try hub.connect(connection, chats: details.map { ($0.chat.id, $0.chat.lastSeq) })
        } catch ChatHub.ConnectError.tooManyConnections(let limit) {
            metrics.connectionRefused(.userLimit)
            try await outbound.close(
                WebSocketErrorCode(codeNumber: Int(CloseCode.tryAgainLater.rawValue)),
                reason: "more than \(limit) connections")
            return
        }
        defer {
            let followed = connection.chats
            if hub.disconnect(connection) { events.presenceChanged(of: user.id, online: false, chats: followed) }
        }
        let ready = ReadyPayload(
            user: UserPayload(user),
            chats: details.compactMap { details in
                joined.positions[details.chat.id].map { ReadyChat(details, lastSeq: $0, isOnline: hub.isOnline) }
            },
            resumeLimit: LiveResume.limit, generation: generation)
        connection.outbox.offer(FrameEncoding.encode(.ready(ready)))
        hub.release(connection)
        if joined.cameOnline { events.presenceChanged(of: user.id, online: true, chats: connection.chats) }

        var connectionLogger = logger
        connectionLogger[metadataKey: "chat.user_id"] = "\(user.id)"
        connectionLogger[metadataKey: "chat.connection_id"] = "\(connection.id)"
        let readerLogger = connectionLogger
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await Self.close(
                    on: connection.outbox.closed(), limits: connection.outbox.limits, outbound: outbound,
                    logger: readerLogger)
            }
            group.addTask {
                var reader = FrameReader(session: self, connection: connection, logger: readerLogger)
                try await reader.read(inbound)
                connection.outbox.close(.finished)
            }
            do {
                try await group.next()
            } catch is CancellationError {}
            group.cancelAll()
        }
    }

    /// Closes the socket with the code the outbox's close reason calls for. The frames
    /// themselves never pass through here: the connection's ``DeliveryLoop`` writes them.
    private static func close(
        on reason: Outbox.CloseReason, limits: Outbox.Limits, outbound: WebSocketOutboundWriter, logger: Logger
    )
        async throws
    {
        switch reason {
        case .finished:
            return
        case .slowConsumer:
            logger.warning(
                "Closing a slow consumer",
                metadata: ["chat.outbox_frames": "\(limits.frames)", "chat.outbox_bytes": "\(limits.bytes)"])
            try await outbound.close(
                WebSocketErrorCode(codeNumber: Int(CloseCode.slowConsumer.rawValue)),
                reason: "too slow: reconnect and resume")
        case .closing(let code, let reason):
            try await outbound.close(WebSocketErrorCode(codeNumber: Int(code)), reason: reason)
        }
    }
}

/// Reads and handles one connection's client frames in order. A send is validated, admitted
/// and queued before the next frame is read, so one connection's sends into a chat are stored
/// in the order it sent them; the reader does not wait for its commit, so a connection can
/// pipeline sends (at most ``SendWindow/capacity`` at once). The commit's answer is published
/// where the chat's batch is stored, in `seq` order (``ChatService/enqueueSend``).
private struct FrameReader {
    let session: ChatSession
    let connection: ChatConnection
    let logger: Logger
    private let window = SendWindow()
    private var sendRate: TokenBucket
    private var lastTyping: [ChatID: Duration] = [:]

    init(session: ChatSession, connection: ChatConnection, logger: Logger) {
        self.session = session
        self.connection = connection
        self.logger = logger
        self.sendRate = TokenBucket(
            rate: session.settings.sendsPerSecond, burst: session.settings.sendBurst, now: session.stopwatch.elapsed)
    }

    private var user: UserID { session.session.user.id }
    private var hub: ChatHub { session.hub }

    /// Handles text messages until the client closes. Protocol violations, oversized and
    /// invalid UTF-8 messages end it with an error the WebSocket layer turns into a close code.
    mutating func read(_ inbound: WebSocketInboundStream) async throws {
        for try await message in inbound.messages(maxSize: session.settings.maxFrameBytes) {
            guard case .text(let text) = message else {
                reply(.error(code: ErrorCode.unsupportedFrame.rawValue, message: "Send JSON text frames.", ref: nil))
                continue
            }
            await handle(text)
        }
    }

    private mutating func handle(_ text: String) async {
        let frame: ClientFrame
        switch ClientFrame.parse(text) {
        case .success(let parsed): frame = parsed
        case .failure(let problem):
            reply(.error(code: problem.code.rawValue, message: problem.message, ref: problem.ref))
            return
        }
        do {
            switch frame {
            case .send(let chat, let clientID, let text): try await send(text, clientID: clientID, to: chat)
            case .read(let chat, let seq): try await read(chat, upTo: seq)
            case .typing(let chat): try typing(in: chat)
            case .resume(let chat, let afterSeq):
                try await session.resumes.resume(chat, after: afterSeq, on: connection)
            }
        } catch {
            Self.reply(
                to: frame.ref, about: frame.chatID, failedWith: error, on: connection, logger: logger, kind: frame.kind)
        }
    }

    /// Admits a send past this connection's rate and window, and hands it to ``LiveSend``; its
    /// answer is published when its batch commits.
    private mutating func send(_ text: String, clientID: String, to chat: ChatID) async throws {
        if let wait = sendRate.take(at: session.stopwatch.elapsed) {
            session.metrics.sendRateLimited()
            reply(
                .error(
                    code: ErrorCode.rateLimited.rawValue, message: "Too many messages; slow down.", ref: clientID,
                    retryAfterMs: max(1, Int(wait / .milliseconds(1))), chatID: chat))
            return
        }
        try requireFollowing(chat)
        let received = ContinuousClock.now
        await window.acquire()
        let (connection, logger, window) = (connection, logger, window)
        do {
            try session.sends.send(text, clientID: clientID, to: chat, from: connection, received: received) {
                failure in
                window.release()
                if let failure {
                    Self.reply(
                        to: clientID, about: chat, failedWith: failure, on: connection, logger: logger, kind: .send)
                }
            }
        } catch {
            window.release()
            throw error
        }
    }

    /// The `error` frame for a failed client frame about `chat`: a ``ChatError`` as its code
    /// says (with `retry_after_ms` for `overloaded`), anything else as a logged `internal_error`.
    private static func reply(
        to ref: String, about chat: ChatID, failedWith error: any Error, on connection: ChatConnection,
        logger: Logger, kind: ClientFrame.Kind
    ) {
        let frame: ServerFrame
        switch error {
        case let error as ChatError:
            var retryAfterMs: Int?
            if case .overloaded(let milliseconds) = error { retryAfterMs = milliseconds }
            frame = .error(
                code: error.code.rawValue, message: error.message, ref: ref, retryAfterMs: retryAfterMs, chatID: chat)
        default:
            logger.error("Frame failed", metadata: ["error": "\(error)", "chat.frame": "\(kind)"])
            frame = .error(
                code: ErrorCode.internalError.rawValue, message: "Something went wrong on our side.", ref: ref,
                chatID: chat)
        }
        connection.outbox.offer(FrameEncoding.encode(frame))
    }

    private func read(_ chat: ChatID, upTo seq: Int64) async throws {
        try requireFollowing(chat)
        if let marker = try await session.chats.markRead(in: chat, reader: user, upTo: seq) {
            session.events.markedRead(chat: chat, user: user, seq: marker)
        }
    }

    private mutating func typing(in chat: ChatID) throws {
        try requireFollowing(chat)
        let now = session.stopwatch.elapsed
        if let last = lastTyping[chat], now - last < WebSocketSettings.typingInterval { return }
        lastTyping[chat] = now
        session.events.typing(chat: chat, user: user)
    }

    private func requireFollowing(_ chat: ChatID) throws {
        guard hub.isSubscribed(connection, to: chat) else { throw ChatError.notAMember }
    }

    private func reply(_ frame: ServerFrame) {
        connection.outbox.offer(FrameEncoding.encode(frame))
    }
}

extension ClientFrame {
    /// What a failed frame's `error` reply refers to: a send's `client_id`, otherwise the type.
    var ref: String {
        if case .send(_, let clientID, _) = self { return clientID }
        return kind.rawValue
    }
}
