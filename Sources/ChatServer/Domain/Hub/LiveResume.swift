import ChatProtocol

/// A `resume` from a live connection: the chat's live frames are held while what was missed
/// is read from the store (the edits and deletions since `after_update`, the messages since
/// `after_seq`), then the missed ones, what was held and `resumed` go out without gap or
/// repeat (``ChatHub/endCatchUp(_:chat:afterSeq:frames:versions:)``).
/// The WebSocket layer parses the frame and writes the error; this type owns the steps between.
public struct LiveResume: Sendable {
    /// Most messages one `resume` returns, and most updated ones; `ready` announces it as
    /// `resume_limit`.
    public static let limit = 1000

    let chats: ChatService
    let hub: ChatHub

    public init(chats: ChatService, hub: ChatHub) {
        self.chats = chats
        self.hub = hub
    }

    /// Catches `connection` up on `chat` after `afterSeq` and, when given, `afterUpdate`.
    /// - Throws: ``ChatError/notAMember`` when the connection does not follow the chat,
    ///   ``ChatError/resumeTooFar(limit:)`` past ``limit`` missed messages or updates,
    ///   ``ChatError/resyncRequired(lastSeq:)`` past the chat's end; live delivery then
    ///   continues where it was.
    func resume(_ chat: ChatID, after afterSeq: Int64, afterUpdate: Int64?, on connection: ChatConnection) async throws
    {
        guard hub.beginCatchUp(connection, chat: chat) else { throw ChatError.notAMember }
        do {
            guard
                let missed = try await chats.catchUp(
                    in: chat, viewer: connection.userID, afterSeq: afterSeq, afterUpdate: afterUpdate,
                    limit: Self.limit)
            else { throw ChatError.resumeTooFar(limit: Self.limit) }
            // Updates first: they are about messages the client has; the new ones come as they are now.
            let updates = missed.updated.map {
                (
                    seq: Int64?.none,
                    frame: FrameEncoding.encode(.messageUpdated(MessagePayload($0.message, isRead: $0.isRead)))
                )
            }
            let messages = missed.messages.map {
                (
                    seq: Int64?.some($0.message.seq),
                    frame: FrameEncoding.encode(.message(MessagePayload($0.message, isRead: $0.isRead)))
                )
            }
            // A held update of a message older than the state read here must not follow it.
            let versions = Dictionary(
                (missed.updated + missed.messages).map { ($0.message.id, $0.message.updateSeq) },
                uniquingKeysWith: max)
            hub.endCatchUp(
                connection, chat: chat, afterSeq: afterSeq, frames: updates + messages, versions: versions)
        } catch {
            hub.endCatchUp(connection, chat: chat, afterSeq: nil, frames: [])
            throw error
        }
    }
}
