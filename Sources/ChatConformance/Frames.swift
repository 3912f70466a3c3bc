import ChatProtocol

/// Reading what a check waits for from a connection.
extension ChatWebSocketClient {
    /// The next `count` messages of `chat` this connection receives, as `message` frames or as
    /// `ack`s of its own sends (not duplicate acks, which repeat an earlier delivery). An
    /// `error` frame fails the check.
    public func deliveries(
        _ count: Int, in chat: ChatID, timeout: Duration = Patience.wait
    ) async throws
        -> [MessagePayload]
    {
        var received: [MessagePayload] = []
        while received.count < count {
            switch try await next(timeout: timeout) {
            case .message(let message) where message.chatID == chat: received.append(message)
            case .ack(_, let message, false) where message.chatID == chat: received.append(message)
            case .error(let code, let message, let ref, _, _):
                throw CheckFailure("error frame \(code): \(message) (ref \(ref ?? "-"))")
            default: continue
            }
        }
        return received
    }

    /// The next `ack` on the connection.
    public func ack() async throws -> (message: MessagePayload, duplicate: Bool) {
        guard case .ack(_, let message, let duplicate) = try await next(.ack) else {
            throw CheckFailure("expected an ack")
        }
        return (message, duplicate)
    }

    /// Frames up to and including the first of `kind`.
    public func frames(until kind: ServerFrame.Kind) async throws -> [ServerFrame] {
        var frames: [ServerFrame] = []
        repeat {
            frames.append(try await next())
        } while frames.last?.kind != kind
        return frames
    }

    /// The `message_updated` frames about `message`, up to the one with `updateSeq` (later
    /// ones may repeat or skip earlier states, never go back).
    public func updates(of message: MessageID, until updateSeq: Int64) async throws -> [MessagePayload] {
        var seen: [MessagePayload] = []
        while seen.last?.updateSeq ?? 0 < updateSeq {
            switch try await next() {
            case .messageUpdated(let updated) where updated.id == message: seen.append(updated)
            case .error(let code, let text, _, _, _): throw CheckFailure("error frame \(code): \(text)")
            default: continue
            }
        }
        return seen
    }
}

extension ServerFrame {
    /// The message a `message` frame carries.
    public var message: MessagePayload? {
        if case .message(let message) = self { return message }
        return nil
    }

    /// The code an `error` frame carries.
    public var errorCode: String? {
        if case .error(let code, _, _, _, _) = self { return code }
        return nil
    }
}
