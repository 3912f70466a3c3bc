import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import Synchronization

/// HTTP/1.1 with WebSocket upgrades decided by the router.
///
/// It works like hummingbird-websocket's `HTTP1WebSocketUpgradeChannel`, with one difference
/// that the API needs: a refused upgrade gets the router's own response, so the client learns
/// the real reason (401, 403, 404, 429 with the usual JSON error body) instead of a bare 400.
/// A handshake is evaluated by running the router with a ``WebSocketUpgradeSlot`` in the
/// request context; the `/ws` route fills the slot with the session to run when it accepts.
/// (NIO's upgrade handler does not pass a refused handshake on to the HTTP pipeline, so the
/// response computed during the evaluation is the one written.)
struct WebSocketUpgradeChannel: ServerChildChannel, HTTPChannelHandler {
    /// WebSocket protocol settings of the server side.
    struct Configuration: Sendable {
        var maxFrameSize: Int
        var pingInterval: Duration
        /// How long a closing connection waits for the client's close frame.
        var closeTimeout: Duration = .seconds(5)
        /// How long a request head may take to arrive (see ``RequestHeadDeadline``).
        var requestHeadTimeout: Duration
        /// How long an HTTP keep-alive connection may sit idle between requests.
        var idleTimeout: Duration
        /// The server's open connections and their limit.
        var connections: OpenConnections
        /// Where refused connections are counted.
        var metrics: ChatMetrics
    }

    /// What a connection turned into after its first request.
    enum Negotiated: Sendable {
        /// An accepted handshake: the channel now speaks WebSocket through its handler, and the
        /// session is to be opened on it.
        case webSocket(any Channel, NIOLoopBound<WebSocketConnectionHandler>, ChatSession)
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// A refused handshake, and the response that says why.
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, Response)
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let upgradeRouter: RouterResponder<ChatRequestContext>
    let configuration: Configuration

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // Carries the handshake's outcome to the upgraded or the HTTP pipeline.
            let handshake = HandshakeOutcome()
            let upgrader = NIOTypedWebSocketServerUpgrader<Negotiated>(
                maxFrameSize: configuration.maxFrameSize,
                shouldUpgrade: { channel, head in
                    let promise = channel.eventLoop.makePromise(of: HTTPHeaders?.self)
                    promise.completeWithTask {
                        switch try await evaluate(head, channel: channel, logger: logger) {
                        case .success(let session):
                            handshake.accepted.accept(session)
                            return HTTPHeaders()
                        case .failure(let refusal):
                            handshake.refuse(refusal.response)
                            return nil
                        }
                    }
                    return promise.futureResult
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let session = handshake.accepted.session else {
                            throw ChannelError.inappropriateOperationForState
                        }
                        // Frames are no request heads.
                        let deadline = try channel.pipeline.syncOperations.handler(type: RequestHeadDeadline.self)
                        channel.pipeline.syncOperations.removeHandler(deadline, promise: nil)
                        let handler = WebSocketConnectionHandler(
                            settings: .init(
                                maxMessageBytes: configuration.maxFrameSize,
                                pingInterval: TimeAmount(configuration.pingInterval),
                                closeTimeout: TimeAmount(configuration.closeTimeout)))
                        try channel.pipeline.syncOperations.addHandler(handler)
                        if deadline.stopRequested { repeatStopNotice(on: channel) }
                        return .webSocket(channel, NIOLoopBound(handler, eventLoop: channel.eventLoop), session)
                    }
                })
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: configuration.idleTimeout, logger: logger))
                        let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                        if try channel.pipeline.syncOperations.handler(type: RequestHeadDeadline.self).stopRequested {
                            repeatStopNotice(on: channel)
                        }
                        return handshake.refusal.map { .refused(http, $0) } ?? .http(http)
                    }
                })
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration<Negotiated>(
                upgradeConfiguration: upgradeConfiguration)
            pipeline.enablePipelining = false  // NIOAsyncChannel pipelines HTTP itself
            pipeline.enableErrorHandling = false  // Hummingbird handles errors
            pipeline.enableResponseHeaderValidation = false  // HTTPTypes validates already
            try channel.pipeline.syncOperations.addHandler(
                ConnectionLimit(connections: configuration.connections, metrics: configuration.metrics))
            try channel.pipeline.syncOperations.addHandler(
                RequestHeadDeadline(
                    timeout: .nanoseconds(Int64(configuration.requestHeadTimeout / .nanoseconds(1))),
                    metrics: configuration.metrics))
            let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                configuration: pipeline)
            return Value(negotiated: negotiated, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refused(let http, let response):
                try await http.executeThenClose { _, outbound in
                    var head = response.head
                    head.headerFields[.connection] = "close"
                    try await ResponseWriter(outbound: outbound).write(response: head, body: response.body)
                }
            case .webSocket(let channel, let handler, let session):
                // Only the set-up runs in this task; then the connection lives in its pipeline.
                await session.open(channel: channel, transport: handler)
            }
        } catch let error as ChannelError where error == .inputClosed {
            logger.trace("Connection closed during the upgrade")
        } catch {
            logger.debug("Connection ended with an error", metadata: ["error": "\(error)"])
        }
    }

    /// Tells the handlers just put in place on `channel` that the server stops: the notice came
    /// while the connection's first request was being negotiated, before they were there
    /// (``RequestHeadDeadline``). It goes on the event loop's next turn, after the request,
    /// which waits in the upgrade handler until now, has reached them: an HTTP connection
    /// then closes after its answer, a WebSocket one with 1001.
    private func repeatStopNotice(on channel: any Channel) {
        channel.eventLoop.execute {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    /// Runs the router on a handshake: the session to run when `/ws` accepted it, otherwise the
    /// router's response.
    private func evaluate(
        _ head: HTTPRequestHead, channel: any Channel, logger: Logger
    ) async throws
        -> Result<ChatSession, Refusal>
    {
        let request = Request(
            head: try HTTPRequest(head, secure: false, splitCookie: false), body: .init(buffer: ByteBuffer()))
        var logger = logger
        logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
        var context = ChatRequestContext(source: .init(channel: channel, logger: logger))
        let slot = WebSocketUpgradeSlot()
        context.upgrade = slot
        let response = try await upgradeRouter.respond(to: request, context: context)
        guard response.status == .ok, let session = slot.session else { return .failure(Refusal(response: response)) }
        return .success(session)
    }

    /// A refused handshake's response.
    struct Refusal: Error {
        let response: Response
    }
}

/// What the evaluation of a connection's handshake decided.
private final class HandshakeOutcome: Sendable {
    let accepted = WebSocketUpgradeSlot()
    private let refused = Mutex<Response?>(nil)

    var refusal: Response? { refused.withLock { $0 } }

    func refuse(_ response: Response) {
        refused.withLock { $0 = response }
    }
}

/// Where the `/ws` route leaves the session to run when it accepts a handshake. Present in the
/// request context only while a handshake is being evaluated.
final class WebSocketUpgradeSlot: Sendable {
    private let accepted = Mutex<ChatSession?>(nil)

    var session: ChatSession? { accepted.withLock { $0 } }

    func accept(_ session: ChatSession) {
        accepted.withLock { $0 = session }
    }
}
