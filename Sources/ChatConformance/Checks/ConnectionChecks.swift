import ChatProtocol
import NIOHTTP1

extension ConformanceSuite {
    static let connectionChecks: [ConformanceCheck] = [
        ConformanceCheck("a refused WebSocket handshake gets the API's JSON error: 401, 404, 422, 426") { target in
            let account = try await target.register("erin")
            guard let (host, port) = target.plainAddress(of: 0) else {
                throw CheckSkipped("needs a plain http:// URL to write the handshake byte by byte")
            }
            for (query, token, upgrade, status, code) in [
                ("", nil, true, 401, "not_authenticated"),
                ("", "not-a-token", true, 401, "not_authenticated"),
                ("?chat_id=999999999", account.token, true, 404, "chat_not_found"),
                ("?chat_id=abc", account.token, true, 422, "validation_failed"),
                ("", account.token, false, 426, "upgrade_required"),
            ] {
                var lines = ["GET /ws\(query) HTTP/1.1", "Host: \(host):\(port)", "Connection: close"]
                if upgrade {
                    lines = [
                        "GET /ws\(query) HTTP/1.1", "Host: \(host):\(port)", "Connection: Upgrade",
                        "Upgrade: websocket",
                        "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    ]
                }
                if let token { lines.append("Authorization: Bearer \(token)") }
                let request = Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
                let bytes = try await RawConnection.exchange(host: host, port: port, request: request, until: "}}")
                let reply = try ConformanceTarget.Reply(rawResponse: bytes)
                try require(
                    reply.status == status && reply.errorCode == code, "GET /ws\(query): \(reply.status) \(reply.text)")
                try requireOneErrorShape(reply)
            }
        },
        ConformanceCheck("bad frames get an error frame naming the problem, and the connection stays open") { target in
            let (alice, bob) = (try await target.register("alice"), try await target.register("bob"))
            let chat = try await target.group("frames", of: alice, with: [bob])
            let elsewhere = try await target.createChat("elsewhere", as: bob)
            let socket = try await target.connect(alice)
            for (text, code, ref, chatID) in [
                ("{not json", "invalid_json", nil, nil),
                (#"{"type": "send", "type": "read"}"#, "invalid_json", "send", nil),
                (#"{"type": "shout", "chat_id": 1}"#, "unknown_type", "shout", nil),
                (#"{"chat_id": 1}"#, "unknown_type", nil, nil),
                (#"{"type": "send", "chat_id": \#(chat.id), "client_id": "c1"}"#, "validation_failed", "c1", nil),
                (#"{"type": "read", "chat_id": \#(chat.id), "seq": "x"}"#, "validation_failed", "read", nil),
                (
                    #"{"type": "send", "chat_id": \#(elsewhere.id), "client_id": "c2", "text": "hi"}"#, "not_a_member",
                    "c2",
                    elsewhere.id
                ),
            ] as [(String, String, String?, ChatID?)] {
                socket.sendText(text)
                guard case .error(let got, _, let gotRef, _, let gotChat) = try await socket.next(.error) else {
                    continue
                }
                try require(
                    got == code && gotRef == ref && gotChat == chatID,
                    "\(text): expected \(code) ref \(ref ?? "none") chat \(chatID.map { "\($0)" } ?? "none"), "
                        + "got \(got) ref \(gotRef ?? "none") chat \(gotChat.map { "\($0)" } ?? "none")")
            }
            socket.send(.send(chatID: chat.id, clientID: "after", text: "still here"))
            guard case .ack(let clientID, let message, false) = try await socket.next(.ack) else {
                throw CheckFailure("a good send after the bad frames is acknowledged as new")
            }
            try require(clientID == "after" && message.seq == 1, "the ack: \(clientID) seq \(message.seq)")
            await socket.close()
        },
    ]
}
