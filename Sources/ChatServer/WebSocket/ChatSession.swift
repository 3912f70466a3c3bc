import ChatProtocol
import Foundation
import Logging
import NIOCore
import NIOWebSocket

/// One accepted WebSocket connection, from its handshake to its ``ClientFrameReader``.
/// ``open(channel:transport:)`` runs once, in the connection's own task: it joins the
/// connection to the hub, queues `ready`, and attaches the reader, and then returns. From then
/// on the connection lives in its channel pipeline: its client frames reach the reader on the
/// event loop, and its server frames leave through its ``Outbox``.
struct ChatSession: Sendable {
    let session: Session
    let narrowedTo: ChatID?
    /// The connection's place under the per-user cap on all nodes (nil on SQLite), given back
    /// when it ends.
    let claim: ConnectionClaim?
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

    /// The close reason (with ``CloseCode/sessionEnded``) when the session's token expires.
    static let expiredReason = "session expired"

    func open(channel: any Channel, transport: NIOLoopBound<WebSocketConnectionHandler>) async {
        let user = session.user
        // A connection that fails to open gives its place under the cap back at once.
        var opened = false
        defer { if !opened { claim?.release() } }
        let outbox: Outbox
        do {
            outbox = try await ChannelFrameSink.outbox(
                for: channel, limits: settings.outboxLimits, delivery: hub.deliveryLoops.loop(for: channel.eventLoop))
        } catch {
            return  // the channel closed meanwhile
        }
        let connection = ChatConnection(
            userID: user.id, tokenID: session.token.tokenID, narrowedTo: narrowedTo, outbox: outbox)
        var connectionLogger = logger
        connectionLogger[metadataKey: "chat.user_id"] = "\(user.id)"
        connectionLogger[metadataKey: "chat.connection_id"] = "\(connection.id)"
        // Every close the server starts goes through the outbox, which stops taking frames first.
        outbox.onForcedClose { [metrics, limits = outbox.limits, logger = connectionLogger] reason in
            let (code, text): (CloseCode, String)
            switch reason {
            case .finished:
                return
            case .slowConsumer:
                metrics.slowConsumerClosed()
                logger.warning(
                    "Closing a slow consumer",
                    metadata: [
                        "chat.outbox_frames": "\(limits.frames)", "chat.outbox_bytes": "\(limits.bytes)",
                    ])
                (code, text) = (.slowConsumer, "too slow: reconnect and resume")
            case .closing(let closeCode, let reason):
                (code, text) = (closeCode, reason)
            }
            transport.eventLoop.execute { transport.value.close(code: code, reason: text) }
        }
        let details: [ChatDetails]
        do {
            details = try await chats.chatDetails(for: user.id).filter { connection.accepts($0.chat.id) }
        } catch ChatError.storageUnavailable {
            // A reconnect storm can outrun the database: the client should come back shortly.
            metrics.connectionRefused(.databaseUnavailable)
            outbox.close(.closing(code: .tryAgainLater, reason: "database busy or unavailable"))
            return
        } catch {
            connectionLogger.error("Could not set up a connection", metadata: ["error": "\(error)"])
            outbox.close(.closing(code: .internalError, reason: "internal error"))
            return
        }
        let joined: (positions: [ChatID: LivePosition], cameOnline: Bool)
        do {
            joined = try hub.connect(connection, chats: details.map { ($0.chat.id, $0.chat.position) })
        } catch ChatHub.ConnectError.tooManyConnections(let limit) {
            metrics.connectionRefused(.userLimit)
            outbox.close(.closing(code: .tryAgainLater, reason: "more than \(limit) connections"))
            return
        } catch {
            outbox.close(.closing(code: .internalError, reason: "internal error"))
            return
        }
        let ready = ReadyPayload(
            user: UserPayload(user),
            chats: details.compactMap { details in
                joined.positions[details.chat.id].map { ReadyChat(details, position: $0, isOnline: hub.isOnline) }
            },
            resumeLimit: LiveResume.limit, generation: generation)
        outbox.offer(FrameEncoding.encode(.ready(ready)))
        opened = true
        hub.release(connection)
        if joined.cameOnline { events.presenceChanged(of: user.id, online: true, chats: connection.chats) }

        // A socket does not outlive its token: at expiry it ends as a logged-out session does.
        let untilExpiry = max(0, session.token.expiresAt.timeIntervalSinceNow)
        let readerLogger = connectionLogger
        try? await channel.eventLoop.submit {
            let reader = ClientFrameReader(
                session: self, connection: connection, transport: transport.value, logger: readerLogger)
            reader.expiry = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(untilExpiry * 1000))) {
                outbox.close(.closing(code: .sessionEnded, reason: Self.expiredReason))
            }
            transport.value.attach(reader)
        }.get()
    }
}
