import ChatProtocol
import Logging
import NIOCore

/// Handles one connection's client frames in order, on its event loop.
///
/// A send is validated, admitted and queued when its frame arrives, so one connection's sends
/// into a chat are stored in the order it sent them. The reader does not wait for the commit:
/// a connection may pipeline up to ``sendWindow`` sends, and the commit's answer is published
/// where the chat's batch is stored, in `seq` order (``LiveSend``). A `read` or a `resume`
/// needs the database before the next frame may be handled: it runs in a task of its own, and
/// the frames behind it wait. While frames wait, the connection stops reading from its socket
/// (``WebSocketConnectionHandler/pauseReading()``), so a client that sends faster than it is
/// served waits in its own socket buffer, not in the server's memory.
final class ClientFrameReader: WebSocketMessageHandler {
    /// Most sends of one connection in flight at once. Admission control (``SendAdmission``)
    /// bounds how long each admitted send waits, so a place frees within that bound.
    static let sendWindow = 32

    private enum Message {
        case text(String)
        case binary
    }

    private let session: ChatSession
    private let connection: ChatConnection
    private let transport: WebSocketConnectionHandler
    private let logger: Logger
    /// The token expiry's close, cancelled when the connection ends first.
    var expiry: Scheduled<Void>?
    private var sendRate: TokenBucket
    private var lastTyping: [ChatID: Duration] = [:]
    private var queued: [Message] = []
    private var sendsInFlight = 0
    /// The `read` or `resume` being served; the frames behind it wait.
    private var inFlight: Task<Void, Never>?
    private var isEnded = false

    init(session: ChatSession, connection: ChatConnection, transport: WebSocketConnectionHandler, logger: Logger) {
        self.session = session
        self.connection = connection
        self.transport = transport
        self.logger = logger
        self.sendRate = TokenBucket(
            rate: session.settings.sendsPerSecond, burst: session.settings.sendBurst, now: session.stopwatch.elapsed)
    }

    private var user: UserID { session.session.user.id }
    private var hub: ChatHub { session.hub }
    private var eventLoop: any EventLoop { connection.outbox.sink.eventLoop }

    // MARK: - WebSocketMessageHandler

    func receivedText(_ text: String) {
        queued.append(.text(text))
        handleQueued()
    }

    func receivedBinary() {
        queued.append(.binary)
        handleQueued()
    }

    func closing() {
        isEnded = true
        queued = []
        connection.outbox.close(.finished)
    }

    func closed() {
        expiry?.cancel()
        inFlight?.cancel()
        let followed = connection.chats
        if hub.disconnect(connection) {
            session.events.presenceChanged(of: user, online: false, chats: followed)
        }
        session.claim?.release()
    }

    // MARK: - Frames

    /// Handles the waiting frames until one has to wait, and reads from the socket only while
    /// none wait.
    private func handleQueued() {
        var handled = 0
        while !isEnded, inFlight == nil, sendsInFlight < Self.sendWindow, handled < queued.count {
            let message = queued[handled]
            handled += 1
            switch message {
            case .text(let text): handle(text)
            case .binary:
                reply(.error(code: ErrorCode.unsupportedFrame.rawValue, message: "Send JSON text frames.", ref: nil))
            }
        }
        queued.removeFirst(min(handled, queued.count))
        if queued.isEmpty { transport.resumeReading() } else { transport.pauseReading() }
    }

    private func handle(_ text: String) {
        let frame: ClientFrame
        switch ClientFrame.parse(text) {
        case .success(let parsed): frame = parsed
        case .failure(let problem):
            reply(.error(code: problem.code.rawValue, message: problem.message, ref: problem.ref))
            return
        }
        do {
            switch frame {
            case .send(let chat, let clientID, let text, let replyTo):
                try send(text, clientID: clientID, replyTo: replyTo, to: chat)
            case .read(let chat, let seq):
                try requireFollowing(chat)
                let (chats, events, user) = (session.chats, session.events, user)
                serve(frame) {
                    if let marker = try await chats.markRead(in: chat, reader: user, upTo: seq) {
                        events.markedRead(chat: chat, user: user, seq: marker)
                    }
                }
            case .typing(let chat): try typing(in: chat)
            case .resume(let chat, let afterSeq, let afterUpdate):
                let (resumes, connection) = (session.resumes, connection)
                serve(frame) {
                    try await resumes.resume(chat, after: afterSeq, afterUpdate: afterUpdate, on: connection)
                }
            }
        } catch {
            Self.reply(
                to: frame.ref, about: frame.chatID, failedWith: error, on: connection, logger: logger, kind: frame.kind)
        }
    }

    /// Runs `work` for `frame` in a task; the frames behind it wait until it is done.
    private func serve(_ frame: ClientFrame, _ work: @escaping @Sendable () async throws -> Void) {
        let reader = NIOLoopBound(self, eventLoop: eventLoop)
        let connection = connection
        let logger = logger
        inFlight = Task {
            do {
                try await work()
            } catch {
                ClientFrameReader.reply(
                    to: frame.ref, about: frame.chatID, failedWith: error, on: connection, logger: logger,
                    kind: frame.kind)
            }
            reader.eventLoop.execute {
                reader.value.inFlight = nil
                reader.value.handleQueued()
            }
        }
    }

    /// Admits a send past this connection's rate, and hands it to ``LiveSend``; its answer is
    /// published when its batch commits.
    private func send(_ text: String, clientID: String, replyTo: MessageID?, to chat: ChatID) throws {
        if let wait = sendRate.take(at: session.stopwatch.elapsed) {
            session.metrics.sendRateLimited()
            reply(
                .error(
                    code: ErrorCode.rateLimited.rawValue, message: "Too many messages; slow down.", ref: clientID,
                    retryAfterMs: max(1, Int(wait / .milliseconds(1))), chatID: chat))
            return
        }
        try requireFollowing(chat)
        let reader = NIOLoopBound(self, eventLoop: eventLoop)
        let connection = connection
        let logger = logger
        try session.sends.send(
            text, clientID: clientID, replyTo: replyTo, to: chat, from: connection, received: .now
        ) { failure in
            if let failure {
                Self.reply(to: clientID, about: chat, failedWith: failure, on: connection, logger: logger, kind: .send)
            }
            reader.eventLoop.execute {
                reader.value.sendsInFlight -= 1
                reader.value.handleQueued()
            }
        }
        sendsInFlight += 1
    }

    private func typing(in chat: ChatID) throws {
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
}

extension ClientFrame {
    /// What a failed frame's `error` reply refers to: a send's `client_id`, otherwise the type.
    var ref: String {
        if case .send(_, let clientID, _, _) = self { return clientID }
        return kind.rawValue
    }
}
