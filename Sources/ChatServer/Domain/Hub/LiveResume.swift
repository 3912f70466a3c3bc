import ChatProtocol

/// A `resume` from a live connection: the chat's live frames are held while the messages
/// missed since `after_seq` are read from the store, then the missed ones, what was held and
/// `resumed` go out without gap or repeat (``ChatHub/endCatchUp(_:chat:afterSeq:messages:)``).
/// The WebSocket layer parses the frame and writes the error; this type owns the steps between.
public struct LiveResume: Sendable {
    /// Most messages one `resume` returns; `ready` announces it as `resume_limit`.
    public static let limit = 1000

    let chats: ChatService
    let hub: ChatHub

    public init(chats: ChatService, hub: ChatHub) {
        self.chats = chats
        self.hub = hub
    }

    /// Catches `connection` up on `chat` after `afterSeq`.
    /// - Throws: ``ChatError/notAMember`` when the connection does not follow the chat,
    ///   ``ChatError/resumeTooFar(limit:)`` past ``limit`` missed messages,
    ///   ``ChatError/resyncRequired(lastSeq:)`` past the chat's end; live delivery then
    ///   continues where it was.
    func resume(_ chat: ChatID, after afterSeq: Int64, on connection: ChatConnection) async throws {
        guard hub.beginCatchUp(connection, chat: chat) else { throw ChatError.notAMember }
        do {
            guard
                let missed = try await chats.missedMessages(
                    in: chat, viewer: connection.userID, afterSeq: afterSeq, limit: Self.limit)
            else { throw ChatError.resumeTooFar(limit: Self.limit) }
            let frames = missed.map {
                (
                    seq: $0.message.seq,
                    frame: FrameEncoding.encode(.message(MessagePayload($0.message, isRead: $0.isRead)))
                )
            }
            hub.endCatchUp(connection, chat: chat, afterSeq: afterSeq, messages: frames)
        } catch {
            hub.endCatchUp(connection, chat: chat, afterSeq: nil, messages: [])
            throw error
        }
    }
}
