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
                let authorization = token.map { ["Authorization: Bearer \($0)"] } ?? []
                let plain = ["GET /ws\(query) HTTP/1.1", "Host: \(host):\(port)", "Connection: close"] + authorization
                let request =
                    upgrade
                    ? RawConnection.handshake(host: host, port: port, query: query, headers: authorization)
                    : Array((plain.joined(separator: "\r\n") + "\r\n\r\n").utf8)
                let bytes = try await RawConnection.exchange(host: host, port: port, request: request, until: "}}")
                let reply = try ConformanceTarget.Reply(rawResponse: bytes)
                try require(
                    reply.status == status && reply.errorCode == code, "GET /ws\(query): \(reply.status) \(reply.text)")
                try requireOneErrorShape(reply)
            }
        },
        ConformanceCheck("abusive frames close the connection: oversized 1009, invalid UTF-8 1007, unmasked 1002") {
            target in
            let account = try await target.register("frank")
            guard let (host, port) = target.plainAddress(of: 0) else {
                throw CheckSkipped("needs a plain http:// URL to write frames byte by byte")
            }
            // A text frame whose header announces 1 GiB: refused on its header, before any payload.
            let oversized: [UInt8] = [0x81, 0xFF] + [0, 0, 0, 0, 0x40, 0, 0, 0] + [0x37, 0xFA, 0x21, 0x3D]
            for (abuse, frame, code) in [
                ("an oversized frame", oversized, 1009),
                ("invalid UTF-8", RawConnection.frame(opcode: 0x1, payload: [0xC3, 0x28]), 1007),
                ("an unmasked frame", RawConnection.frame(opcode: 0x1, payload: Array("{}".utf8), masked: false), 1002),
            ] as [(String, [UInt8], UInt16)] {
                let handshake = RawConnection.handshake(
                    host: host, port: port, headers: ["Authorization: Bearer \(account.token)"])
                let closing = try await RawConnection.closing(host: host, port: port, request: handshake + frame)
                try require(closing.responseHead.hasPrefix("HTTP/1.1 101"), "\(abuse): the handshake succeeds first")
                try require(
                    closing.code == code, "\(abuse): closed with \(closing.code) \(closing.reason), not \(code)")
            }
        },
        ConformanceCheck("typing reaches the chat's other members and is not stored") { target in
            let (alice, bob, chat) = try await target.pair()
            let (aliceSocket, bobSocket) = (try await target.connect(alice), try await target.connect(bob))
            aliceSocket.send(.typing(chatID: chat.id))
            try require(
                try await bobSocket.next(.typing) == .typing(chatID: chat.id, userID: alice.id), "bob sees alice typing"
            )
            aliceSocket.send(.send(chatID: chat.id, clientID: "after-typing", text: "hi"))
            _ = try await bobSocket.deliveries(1, in: chat.id)
            let history = try await target.request(.GET, "/history/\(chat.id)", token: bob.token)
                .decode([MessagePayload].self, expecting: 200)
            try require(
                history.map(\.clientID) == ["after-typing"], "typing stores nothing: \(history.map(\.clientID))")
            await aliceSocket.close()
            await bobSocket.close()
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
