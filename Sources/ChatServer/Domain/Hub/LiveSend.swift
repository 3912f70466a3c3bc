import ChatProtocol

/// A send from a live connection, through the steps the design fixes: persist (the chat's
/// batch commits it), then publish (the hub delivers it to the chat and puts the sender's
/// `ack` in its `seq` position), then make sure the sender hears of it. The WebSocket layer
/// parses the frame and writes the answers; this type owns the steps between.
public struct LiveSend: Sendable {
    let chats: ChatService
    let hub: ChatHub
    let metrics: ChatMetrics

    public init(chats: ChatService, hub: ChatHub, metrics: ChatMetrics) {
        self.chats = chats
        self.hub = hub
        self.metrics = metrics
    }

    /// Queues `text` from `connection` into `chat` (answering `replyTo`, when given) and
    /// returns once it is queued. Later, where its batch commits, `finished` gets nil when it
    /// was stored and published (its `ack` is on its way), or the error that kept it from being
    /// stored; it must not block.
    /// - Throws: when the send is refused before it was queued (a bad text or client id,
    ///   ``ChatError/overloaded(retryAfterMilliseconds:)``); then `finished` is never called.
    func send(
        _ text: String, clientID: String, replyTo: MessageID?, to chat: ChatID, from connection: ChatConnection,
        received: ContinuousClock.Instant, finished: @escaping @Sendable ((any Error)?) -> Void
    ) throws {
        hub.sendStarted(connection, clientID: clientID, in: chat)
        do {
            try chats.enqueueSend(
                to: chat, from: connection.userID, clientID: clientID, text: text, replyTo: replyTo
            ) {
                [self] result in
                do {
                    publish(
                        try result.get(), clientID: clientID, chat: chat, received: received, connection: connection)
                    finished(nil)
                } catch {
                    hub.sendEnded(connection, clientID: clientID, in: chat)
                    finished(error)
                }
            }
        } catch {
            hub.sendEnded(connection, clientID: clientID, in: chat)
            if case ChatError.overloaded = error { metrics.sendRefusedAsOverloaded() }
            throw error
        }
    }

    /// Publishes a stored send: the hub delivers it to the chat and puts the sender's `ack` in
    /// its `seq` position.
    private func publish(
        _ appended: AppendedMessage, clientID: String, chat: ChatID, received: ContinuousClock.Instant,
        connection: ChatConnection
    ) {
        metrics.messageStored(duplicate: appended.duplicate)
        let ackedByHub: Bool
        if appended.message.chatID == chat {
            // A duplicate is published too: the first attempt may have been stored without
            // anyone learning it (the database failed before its answer came), and then nobody
            // else got it either. The hub ignores a seq it has delivered already.
            ackedByHub = hub.publish(
                ChatHub.Publication(appended.message, origin: (connection.id, clientID), duplicate: appended.duplicate))
        } else {
            // The client id was used before in another chat: that message is the answer.
            hub.sendEnded(connection, clientID: clientID, in: chat)
            ackedByHub = false
        }
        if !ackedByHub {
            // Delivered before, elsewhere, or the connection stopped following the chat
            // meanwhile: it still learns its send is stored.
            connection.outbox.offer(
                FrameEncoding.encode(
                    .ack(
                        clientID: clientID, message: MessagePayload(appended.message, isRead: false),
                        duplicate: appended.duplicate)))
        }
        metrics.sendAcknowledged(after: .now - received)
    }
}
