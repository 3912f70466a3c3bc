import ChatProtocol

/// The limits a server puts on one user or connection answer with the protocol's codes and
/// let the client go on. Against a server whose limit is above what a check tries, the check
/// is skipped and says so.
extension ConformanceSuite {
    static let limitChecks: [ConformanceCheck] = [
        ConformanceCheck(
            "the send rate limit answers rate_limited with retry_after_ms; the same send then goes through"
        ) {
            target in
            let alice = try await target.register("alice")
            let chat = try await target.createChat("burst", as: alice)
            let socket = try await target.connect(alice)
            let burst = 300
            for number in 1...burst { socket.send(.send(chatID: chat.id, clientID: "r\(number)", text: "r \(number)")) }
            var refused: (clientID: String, retryAfterMs: Int?)?
            var answered = 0
            while answered < burst {
                switch try await socket.next() {
                case .ack: answered += 1
                case .error(let code, _, let ref?, let retryAfterMs, _)
                where code == ErrorCode.rateLimited.rawValue || code == ErrorCode.overloaded.rawValue:
                    answered += 1
                    if refused == nil, code == ErrorCode.rateLimited.rawValue { refused = (ref, retryAfterMs) }
                case .error(let code, let message, let ref, _, _):
                    throw CheckFailure("send \(ref ?? "-"): \(code) \(message)")
                default: continue
                }
            }
            guard let refused else {
                throw CheckSkipped("no send of \(burst) at once was refused: the server's send limit is above that")
            }
            guard let wait = refused.retryAfterMs, wait > 0 else {
                throw CheckFailure("rate_limited without a positive retry_after_ms")
            }
            try await Task.sleep(for: .milliseconds(wait))
            let number = refused.clientID.dropFirst()
            socket.send(.send(chatID: chat.id, clientID: refused.clientID, text: "r \(number)"))
            let (message, duplicate) = try await socket.ack()
            try require(
                message.clientID == refused.clientID && !duplicate, "the refused send is stored when sent again")
            await socket.close()
        },
        ConformanceCheck("a user's connections beyond the per-user limit are refused with 429 too_many_connections") {
            target in
            let account = try await target.register("many")
            guard let (host, port) = target.plainAddress(of: 0) else {
                throw CheckSkipped("needs a plain http:// URL to read the refused handshake")
            }
            var sockets: [ChatWebSocketClient] = []
            let most = 50
            while sockets.count < most, let socket = try? await target.connect(account, node: 0) {
                sockets.append(socket)
            }
            let opened = sockets.count
            func probe() async throws {
                guard opened < most else {
                    throw CheckSkipped(
                        "\(most) connections of one user were all accepted: the server's limit is above that")
                }
                let handshake = RawConnection.handshake(
                    host: host, port: port, headers: ["Authorization: Bearer \(account.token)"])
                let reply = try ConformanceTarget.Reply(
                    rawResponse: try await RawConnection.exchange(
                        host: host, port: port, request: handshake, until: "}}"))
                try require(
                    reply.status == 429 && reply.errorCode == "too_many_connections",
                    "connection \(opened + 1): \(reply.status) \(reply.text)")
                try requireOneErrorShape(reply)
            }
            // Whatever the outcome, the connections are closed before the check ends.
            var failure: (any Error)?
            do { try await probe() } catch { failure = error }
            for socket in sockets { await socket.close() }
            if let failure { throw failure }
            // With the others closed, the user connects again: at once on one node; on a cluster,
            // once the node has written the closed connections' release (docs/security.md).
            let deadline = ContinuousClock.now + Patience.wait
            while true {
                do {
                    await (try await target.connect(account, node: 0)).close()
                    return
                } catch  where ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        },
    ]
}
