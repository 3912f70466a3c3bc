import ChatProtocol
import ChatServer
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
import WSClient

/// A real WebSocket client of the chat protocol for checks and tests: typed frames in and out,
/// waits with timeouts (never sleeps), and the close frame the server sent. Every frame it
/// receives is checked against the protocol document (asyncapi/asyncapi.json): one that does
/// not follow it fails the read.
///
/// The connection runs in a task of its own for as long as its user holds the client; it
/// ends when they call ``close()`` or the server closes.
public final class ChatWebSocketClient: Sendable {
    /// The frame that was not what a test expected, or no frame in time.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    private let inbox: FrameInbox
    private let outgoing: AsyncStream<WebSocketOutboundWriter.OutboundFrame>.Continuation
    private let connection: Task<WebSocketCloseFrame?, any Error>
    private let readyFrame = Mutex<ReadyPayload?>(nil)

    /// The `ready` frame the server opened with.
    public var ready: ReadyPayload {
        readyFrame.withLock { $0 }
            ?? ReadyPayload(
                user: UserPayload(id: 0, name: ""), chats: [], resumeLimit: 0, generation: "")
    }

    private init(url: String, headers: HTTPFields, document: ProtocolDocument) {
        let (outgoingFrames, outgoing) = AsyncStream.makeStream(of: WebSocketOutboundWriter.OutboundFrame.self)
        self.outgoing = outgoing
        let inbox = FrameInbox(document: document)
        self.inbox = inbox
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 22)
        configuration.additionalHeaders = headers
        self.connection = Task {
            defer { inbox.finish() }
            return try await WebSocketClient.connect(
                url: url, configuration: configuration, logger: Logger(label: "chat-ws-test")
            ) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 22) {
                            guard case .text(let text) = message else { continue }
                            inbox.receive(text)
                        }
                    }
                    group.addTask {
                        for await frame in outgoingFrames {
                            try await outbound.write(frame)
                        }
                        // Cancelled: the server closed first, and a close of ours would wait for
                        // an answer that never comes.
                        guard !Task.isCancelled else { return }
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
    }

    /// Connects to `ws://127.0.0.1:<port>/ws<query>` and waits for `ready`; frames are checked
    /// strictly (``ProtocolDocument/strict``).
    /// - Parameters:
    ///   - token: sent as `Authorization: Bearer`, unless `headers` carry credentials instead.
    public static func connect(
        port: Int, token: String?, query: String = "", headers: HTTPFields = [:], timeout: Duration = Patience.wait
    ) async throws -> ChatWebSocketClient {
        try await connect(
            url: "ws://127.0.0.1:\(port)/ws\(query)", token: token, headers: headers,
            document: try ProtocolDocument.strict.get(), timeout: timeout)
    }

    /// Connects to `url` (`ws://host:port/ws?...`) and waits for `ready`, checking every frame
    /// against `document`.
    public static func connect(
        url: String, token: String?, headers: HTTPFields = [:], document: ProtocolDocument,
        timeout: Duration = Patience.wait
    ) async throws -> ChatWebSocketClient {
        var headers = headers
        if let token { headers[.authorization] = "Bearer \(token)" }
        let client = ChatWebSocketClient(url: url, headers: headers, document: document)
        guard case .ready(let ready) = try await client.next(timeout: timeout) else {
            throw Failure(description: "the first frame was not ready")
        }
        client.readyFrame.withLock { $0 = ready }
        return client
    }

    /// Sends a frame.
    public func send(_ frame: ClientFrame) {
        outgoing.yield(.text(String(decoding: (try? JSONEncoder().encode(frame)) ?? Data(), as: UTF8.self)))
    }

    /// Sends raw text, for malformed input.
    public func sendText(_ text: String) {
        outgoing.yield(.text(text))
    }

    /// Sends a hand-made WebSocket frame, for protocol abuse (invalid UTF-8, binary data).
    public func sendFrame(opcode: WebSocketOpcode, bytes: [UInt8]) {
        outgoing.yield(.custom(WebSocketFrame(fin: true, opcode: opcode, data: ByteBuffer(bytes: bytes))))
    }

    /// The next frame from the server.
    /// - Throws: ``Failure`` when none arrives within `timeout` or the connection has closed.
    public func next(timeout: Duration = Patience.wait) async throws -> ServerFrame {
        try await inbox.next(timeout: timeout)
    }

    /// The next frame of `kind`, skipping others (presence, typing, ...).
    public func next(_ kind: ServerFrame.Kind, timeout: Duration = Patience.wait) async throws -> ServerFrame {
        let deadline = ContinuousClock.now + timeout
        while true {
            let frame = try await next(timeout: deadline - .now)
            if frame.kind == kind { return frame }
        }
    }

    /// Closes the connection from the client side and waits (at most ``Patience/wait``) for it
    /// to end.
    @discardableResult
    public func close() async -> WebSocketCloseFrame? {
        outgoing.finish()
        return try? await end(within: Patience.wait)
    }

    /// Waits for the server to close the connection and returns its close frame.
    /// - Throws: ``Failure`` when the connection is still open after `timeout`; it is then
    ///   dropped, so that nothing waits for it forever.
    public func closedByServer(timeout: Duration = Patience.wait) async throws -> WebSocketCloseFrame? {
        try await end(within: timeout)
    }

    /// The close frame once the connection has ended; after `timeout` the connection is
    /// dropped and ``Failure`` thrown.
    private func end(within timeout: Duration) async throws -> WebSocketCloseFrame? {
        let connection = connection
        return try await withThrowingTaskGroup(of: WebSocketCloseFrame?.self) { group in
            group.addTask {
                // Awaiting a task's value does not pass cancellation on: do it by hand, or the
                // group could not finish after a timeout.
                try await withTaskCancellationHandler {
                    try await connection.value
                } onCancel: {
                    connection.cancel()
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw Failure(description: "the server did not close the connection within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}

/// Frames received and not yet read by the test, with at most one waiting reader.
private final class FrameInbox: Sendable {
    private enum Outcome {
        case frame(String)
        case closed
        case timedOut
    }

    private struct State {
        var frames: [String] = []
        var waiter: (id: Int, continuation: CheckedContinuation<Outcome, Never>)?
        var finished = false
        var nextWaiterID = 0
        /// A waiter whose timer fired before it was registered: it must not wait at all.
        var expiredBeforeWaiting: Int?
    }

    private let state = Mutex(State())
    private let document: ProtocolDocument

    init(document: ProtocolDocument) {
        self.document = document
    }

    func receive(_ text: String) {
        let waiter = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
            if let waiter = state.waiter.take() { return waiter.continuation }
            state.frames.append(text)
            return nil
        }
        waiter?.resume(returning: .frame(text))
    }

    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
            state.finished = true
            return state.waiter.take()?.continuation
        }
        waiter?.resume(returning: .closed)
    }

    /// The next frame, checked against the document. Waits at most `timeout`, and ends early
    /// (throwing `CancellationError`) when the task is cancelled.
    func next(timeout: Duration) async throws -> ServerFrame {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        // The timer only ever expires the waiter it was made for, so a frame that arrives just
        // as it fires is returned rather than lost; cancellation ends the timer early.
        let outcome = await withTaskGroup(of: Outcome?.self) { group in
            group.addTask { await self.wait(id) }
            group.addTask {
                try? await Task.sleep(for: max(timeout, .zero))
                self.expire(id)
                return nil
            }
            defer { group.cancelAll() }
            while let result = await group.next() {
                if let outcome = result { return outcome }
            }
            return Outcome.timedOut
        }
        try Task.checkCancellation()
        switch outcome {
        case .frame(let text):
            let problems = document.problems(of: Data(text.utf8), from: .server)
            guard problems.isEmpty else {
                throw ChatWebSocketClient.Failure(
                    description: "frame \(text) does not follow asyncapi/asyncapi.json: \(problems)")
            }
            do {
                return try JSONDecoder().decode(ServerFrame.self, from: Data(text.utf8))
            } catch {
                throw ChatWebSocketClient.Failure(description: "undecodable frame \(text): \(error)")
            }
        case .closed: throw ChatWebSocketClient.Failure(description: "the connection is closed")
        case .timedOut: throw ChatWebSocketClient.Failure(description: "no frame within \(timeout)")
        }
    }

    private func wait(_ id: Int) async -> Outcome {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Outcome? in
                if !state.frames.isEmpty { return .frame(state.frames.removeFirst()) }
                if state.finished { return .closed }
                if state.expiredBeforeWaiting == id { return .timedOut }
                state.waiter = (id, continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Times out waiter `id`. A zero or tiny timeout can fire before the waiter is registered
    /// (the timer runs in a task of its own); that is remembered, or the waiter would wait
    /// forever.
    private func expire(_ id: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
            guard state.waiter?.id == id else {
                state.expiredBeforeWaiting = id
                return nil
            }
            return state.waiter.take()?.continuation
        }
        waiter?.resume(returning: .timedOut)
    }
}
