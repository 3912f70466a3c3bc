import ChatConformance
import ChatProtocol
import ChatServer
import ChatTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOWebSocket
import Testing

@Suite("WebSocket endpoint", .timeLimit(.minutes(5)))
struct WebSocketTests {
    static let handshake: HTTPFields = [
        .connection: "Upgrade", .upgrade: "websocket", .secWebSocketVersion: "13",
        .secWebSocketKey: "dGhlIHNhbXBsZSBub25jZQ==",
    ]

    /// A live server with two members of one private chat, both connected.
    static func withPair(
        overrides: [String: String] = [:], clock: any Clock<Duration> = ContinuousClock(),
        _ test: @Sendable (APITestClient, ChatPayload, ChatWebSocketClient, ChatWebSocketClient) async throws -> Void
    ) async throws {
        try await TestApp.run(testing: .live, overrides: overrides, clock: clock) { api in
            let port = try #require(api.client.port)
            let (alice, bob, chat) = try await RealtimeContract.pair(api)
            let aliceSocket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            let bobSocket = try await ChatWebSocketClient.connect(port: port, token: bob.token)
            try await test(api, chat, aliceSocket, bobSocket)
            await aliceSocket.close()
            await bobSocket.close()
        }
    }

    @Test func upgradesAreRefusedWithTheUsualErrors() async throws {
        try await TestApp.run(overrides: ["CHAT_WS_CONNECTIONS_PER_USER": "1"]) { api in
            let alice = try await api.user("alice")
            var withToken = Self.handshake
            withToken[.authorization] = "Bearer \(alice.token)"

            let anonymous = try await api.send(.get, "/ws", headers: Self.handshake)
            #expect(anonymous.status == .unauthorized && anonymous.error?.code == "not_authenticated")

            var foreignCookie = Self.handshake
            foreignCookie[.cookie] = "access_token=\(alice.token)"
            foreignCookie[.origin] = "https://evil.example"
            let crossSite = try await api.send(.get, "/ws", headers: foreignCookie)
            #expect(crossSite.status == .forbidden && crossSite.error?.code == "cross_site_request")
            foreignCookie[.origin] = nil
            #expect(
                try await api.send(.get, "/ws", headers: foreignCookie).status == .forbidden, "cookies need an Origin")

            let plain = try await api.send(.get, "/ws", as: alice)
            #expect(plain.status == .upgradeRequired && plain.error?.code == "upgrade_required")

            let notMine = try await api.send(.get, "/ws?chat_id=999", headers: withToken)
            #expect(notMine.status == .notFound && notMine.error?.code == "chat_not_found")
            let badChat = try await api.send(.get, "/ws?chat_id=abc", headers: withToken)
            #expect(badChat.status == .unprocessableContent)
        }
    }

    @Test func theConnectionLimitPerUserIsEnforced() async throws {
        try await TestApp.run(testing: .live, overrides: ["CHAT_WS_CONNECTIONS_PER_USER": "2"]) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            let first = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            let second = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            var headers = Self.handshake
            headers[.authorization] = "Bearer \(alice.token)"
            let third = try await api.send(.get, "/ws", headers: headers)
            #expect(third.status == .tooManyRequests && third.error?.code == "too_many_connections")
            await first.close()
            await second.close()
        }
    }

    @Test func aConnectionCanBeNarrowedToOneChat() async throws {
        try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            let kept = try await api.createChat("Kept", as: alice)
            let other = try await api.createChat("Other", as: alice)
            let narrowed = try await ChatWebSocketClient.connect(
                port: port, token: alice.token, query: "?chat_id=\(kept.id)")
            #expect(narrowed.ready.chats.map(\.id) == [kept.id])
            narrowed.send(.send(chatID: other.id, clientID: "x", text: "elsewhere"))
            #expect(
                try await narrowed.next(.error)
                    == .error(code: "not_a_member", message: ChatError.notAMember.message, ref: "x", chatID: other.id))
            await narrowed.close()
        }
    }

    @Test(
        "bad frames get an error frame, naming their chat, and the connection stays open",
        arguments: [
            ("not json", "invalid_json", nil, nil),
            ("[1,2]", "invalid_json", nil, nil),
            (#"{"chat_id":1}"#, "unknown_type", nil, nil),
            (#"{"type":"shout","chat_id":1}"#, "unknown_type", "shout", nil),
            (#"{"type":"send","chat_id":1,"text":"hi"}"#, "validation_failed", "send", nil),
            (#"{"type":"send","chat_id":"one","client_id":"c","text":"hi"}"#, "validation_failed", "c", nil),
            (#"{"type":"read","chat_id":1,"seq":"x"}"#, "validation_failed", "read", nil),
            (#"{"type":"send","chat_id":1,"client_id":"c","text":"   "}"#, "validation_failed", "c", 1),
            (#"{"type":"send","chat_id":1,"client_id":"bad id","text":"hi"}"#, "validation_failed", "bad id", 1),
            (#"{"type":"send","chat_id":1,"client_id":"c","text":"01234567890"}"#, "validation_failed", "c", 1),
            (#"{"type":"read","chat_id":1,"seq":-1}"#, "validation_failed", "read", 1),
            (#"{"type":"send","chat_id":999,"client_id":"c","text":"hi"}"#, "not_a_member", "c", 999),
            (#"{"type":"typing","chat_id":999}"#, "not_a_member", "typing", 999),
            (#"{"type":"resume","chat_id":999,"after_seq":0}"#, "not_a_member", "resume", 999),
        ] as [(String, String, String?, Int64?)])
    func badFrames(_ text: String, _ code: String, _ ref: String?, _ aboutChat: Int64?) async throws {
        try await Self.withPair(overrides: ["CHAT_MAX_MESSAGE_LENGTH": "10"]) { _, chat, alice, _ in
            alice.sendText(text)
            guard case .error(let gotCode, _, let gotRef, _, let gotChat) = try await alice.next(.error) else { return }
            #expect(gotCode == code && gotRef == ref)
            #expect(gotChat == aboutChat.map(ChatID.init), "the error names the chat the frame was about")
            alice.send(.send(chatID: chat.id, clientID: "after", text: "still here"))
            guard case .ack(let clientID, _, _) = try await alice.next(.ack) else { return }
            #expect(clientID == "after")
        }
    }

    /// A socket does not outlive its token: when the token expires, the server closes it with
    /// 1008, as it does when the session is logged out.
    @Test func aSocketIsClosedWhenItsTokenExpires() async throws {
        try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let alice = try await api.storedUser("alice")
            // Long enough for the handshake on a loaded machine, which checks the token too.
            let token = try await TokenService(secret: TestApp.jwtSecret, lifetime: .seconds(8)).issue(for: alice.id)
            let socket = try await ChatWebSocketClient.connect(port: port, token: token.token)
            let close = try await socket.closedByServer()
            #expect(close?.closeCode == .policyViolation && close?.reason == "session expired")
            #expect(Date() >= token.expiresAt.addingTimeInterval(-1), "closed at expiry, not before")
        }
    }

    @Test func binaryFramesAreRefusedButTheConnectionStays() async throws {
        try await Self.withPair { _, chat, alice, _ in
            alice.sendFrame(opcode: .binary, bytes: [1, 2, 3])
            guard case .error(let code, _, _, _, _) = try await alice.next(.error) else { return }
            #expect(code == "unsupported_frame")
            alice.send(.typing(chatID: chat.id))
        }
    }

    @Test func framesRepeatingAKeyAreRefusedButTheConnectionStays() async throws {
        try await Self.withPair { _, chat, alice, bob in
            alice.sendText(#"{"type":"send","chat_id":\#(chat.id),"client_id":"d1","text":"one","text":"two"}"#)
            guard case .error(let code, let message, _, _, _) = try await alice.next(.error) else { return }
            #expect(code == "invalid_json" && message.contains("\"text\""))
            alice.send(.send(chatID: chat.id, clientID: "d2", text: "fine"))
            guard case .message(let message) = try await bob.next(.message) else { return }
            #expect(message.clientID == "d2" && message.seq == 1, "nothing was stored for the refused frame")
        }
    }

    @Test func aBusyDatabaseAtSetupClosesWith1013() async throws {
        let failingChatDetails: @Sendable (any ChatStore) -> any ChatStore = {
            FaultInjectingStore($0, failing: [.chatDetails])
        }
        try await TestApp.run(testing: .live, wrapStore: failingChatDetails) { api in
            let alice = try await api.user("alice")
            let port = try #require(api.client.port)
            let closing = try await RawConnection.closing(
                port: port,
                request: RawConnection.handshake(port: port, headers: ["Authorization: Bearer \(alice.token)"]))
            #expect(closing.responseHead.hasPrefix("HTTP/1.1 101"))
            #expect(closing.code == 1013)
            #expect(closing.reason == "database busy or unavailable")
        }
    }

    @Test func oversizedFramesCloseWith1009() async throws {
        try await Self.withPair(overrides: ["CHAT_WS_MAX_FRAME_BYTES": "1024"]) { _, chat, alice, _ in
            alice.send(.send(chatID: chat.id, clientID: "big", text: String(repeating: "x", count: 2000)))
            let close = try await alice.closedByServer()
            #expect(close?.closeCode == .messageTooLarge)
        }
    }

    @Test func invalidUTF8ClosesWith1007() async throws {
        try await Self.withPair { _, _, alice, _ in
            alice.sendFrame(opcode: .text, bytes: [0x7B, 0xC3, 0x28, 0x7D])
            let close = try await alice.closedByServer()
            #expect(close?.closeCode == .dataInconsistentWithMessage)
        }
    }

    @Test func sendsAreRateLimitedPerConnection() async throws {
        // The server reads the time from this clock: only the test moves it.
        let clock = ManualClock()
        try await Self.withPair(overrides: ["CHAT_WS_SEND_RATE": "1", "CHAT_WS_SEND_BURST": "2"], clock: clock) {
            api, chat, alice, _ in
            for number in 1...3 { alice.send(.send(chatID: chat.id, clientID: "r\(number)", text: "hi")) }
            var answers: [String: String] = [:]
            var retryAfter: Int?
            while answers.count < 3 {
                switch try await alice.next() {
                case .ack(let clientID, _, _): answers[clientID] = "ack"
                case .error(let code, _, let ref?, let retryAfterMs, _):
                    answers[ref] = code
                    if ref == "r3" { retryAfter = retryAfterMs }
                default: continue
                }
            }
            #expect(answers == ["r1": "ack", "r2": "ack", "r3": "rate_limited"], "the burst, then the rate")
            #expect(retryAfter == 1000, "at one send a second, the next token is a second away")
            #expect(try await api.store.counts().messages == 2, "the limited send was not stored")
            clock.advance(by: .milliseconds(500))
            alice.send(.send(chatID: chat.id, clientID: "r4", text: "hi"))
            guard case .error("rate_limited", _, "r4", 500, _) = try await alice.next(.error) else {
                Issue.record("a send half a second early was not refused with the half second to wait")
                return
            }
            clock.advance(by: .milliseconds(500))
            alice.send(.send(chatID: chat.id, clientID: "r5", text: "hi"))
            guard case .ack("r5", _, false) = try await alice.next(.ack) else {
                Issue.record("a send after the wait was not stored")
                return
            }
        }
    }

    @Test func sendsOverTheNodesQueueAreRefusedAtOnceAndStoreNothing() async throws {
        let gate = AppendGate()
        let gated: @Sendable (any ChatStore) -> any ChatStore = { FaultInjectingStore($0, appendGate: gate) }
        try await TestApp.run(testing: .live, overrides: ["CHAT_SEND_MAX_QUEUED": "2"], wrapStore: gated) { api in
            let port = try #require(api.client.port)
            let (alice, bob, chat) = try await RealtimeContract.pair(api)
            let aliceSocket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            let bobSocket = try await ChatWebSocketClient.connect(port: port, token: bob.token)
            // The database does not answer yet: two sends fill the node's queue, the third is
            // refused before anything else happens.
            for clientID in ["o1", "o2", "o3"] {
                aliceSocket.send(.send(chatID: chat.id, clientID: clientID, text: clientID))
            }
            // Nothing can be acknowledged while the gate is closed.
            guard case .error(let code, _, let ref, let retryAfterMs, _) = try await aliceSocket.next(.error) else {
                return
            }
            #expect(code == "overloaded" && ref == "o3")
            #expect((retryAfterMs ?? 0) > 0, "the refusal says when to retry")
            gate.open()
            var acked: [String: Int64] = [:]
            while acked.count < 2 {
                if case .ack(let clientID, let message, false) = try await aliceSocket.next() {
                    acked[clientID] = message.seq
                }
            }
            #expect(acked == ["o1": 1, "o2": 2])
            // The same send again, as the client was told: stored now, once.
            aliceSocket.send(.send(chatID: chat.id, clientID: "o3", text: "o3"))
            guard case .ack("o3", let message, let duplicate) = try await aliceSocket.next(.ack) else {
                Issue.record("the repeated send was not acknowledged")
                return
            }
            #expect(message.seq == 3 && !duplicate)
            let delivered = try await bobSocket.deliveries(3, in: chat.id)
            #expect(delivered.map(\.clientID) == ["o1", "o2", "o3"])
            let metrics = try await api.send(.get, "/metrics").bodyText
            #expect(metrics.contains(#"chat_sends_refused_total{reason="overloaded"} 1"#))
            await aliceSocket.close()
            await bobSocket.close()
        }
    }

    @Test func typingReachesOthersAtMostOnceASecondAndIsNeverStored() async throws {
        let clock = ManualClock()
        try await Self.withPair(clock: clock) { api, chat, alice, bob in
            alice.send(.typing(chatID: chat.id))
            alice.send(.typing(chatID: chat.id))
            let typing = ServerFrame.typing(chatID: chat.id, userID: alice.ready.user.id)
            #expect(try await bob.next(.typing) == typing)
            // The second typing within a second was dropped: the next frame bob gets is the message.
            alice.send(.send(chatID: chat.id, clientID: "m", text: "hi"))
            guard case .message(let message) = try await bob.next() else {
                Issue.record("a second typing frame was passed on")
                return
            }
            #expect(message.clientID == "m")
            clock.advance(by: WebSocketSettings.typingInterval)
            alice.send(.typing(chatID: chat.id))
            #expect(try await bob.next() == typing, "a second later typing is passed on again")
            #expect(try await api.store.counts().messages == 1)
        }
    }

    @Test func resumingTooFarBackIsRefused() async throws {
        try await Self.withPair { api, chat, _, bob in
            try await api.storeMessages(1001, in: chat.id, from: chat.creatorID)
            bob.send(.resume(chatID: chat.id, afterSeq: 0))
            guard case .error(let code, _, let ref, _, _) = try await bob.next(.error) else { return }
            #expect(code == "resume_too_far" && ref == "resume")
            bob.send(.resume(chatID: chat.id, afterSeq: 1))
            let resumed = try await bob.deliveries(1000, in: chat.id)
            #expect(resumed.map(\.seq) == Array(2...1001))
        }
    }

    @Test func resumedMessagesCarryTheirReadStatus() async throws {
        try await Self.withPair { api, chat, alice, bob in
            try await api.storeMessages(2, in: chat.id, from: chat.creatorID)
            _ = try await api.store.advanceReadMarker(of: bob.ready.user.id, in: chat.id, to: 1)
            alice.send(.resume(chatID: chat.id, afterSeq: 0))
            let resumed = try await alice.deliveries(2, in: chat.id)
            #expect(resumed.map(\.isRead) == [true, false])
        }
    }
}

@Suite("WebSocket handshakes on the wire", .timeLimit(.minutes(5)))
struct WebSocketWireTests {
    /// `GET /health/live` on a connection of its own, closed after the answer.
    static let liveCheck = Array("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)

    @Test func refusedHandshakesGetTheRoutersErrorOnAFreshConnection() async throws {
        try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            let anonymous = try await RawConnection.exchange(port: port, request: RawConnection.handshake(port: port))
            let anonymousText = String(decoding: anonymous, as: UTF8.self)
            #expect(anonymousText.hasPrefix("HTTP/1.1 401"))
            #expect(anonymousText.contains(#"{"error":{"code":"not_authenticated""#))
            let crossSite = try await RawConnection.exchange(
                port: port,
                request: RawConnection.handshake(
                    port: port, headers: ["Cookie: access_token=\(alice.token)", "Origin: https://evil.example"]))
            let crossSiteText = String(decoding: crossSite, as: UTF8.self)
            #expect(crossSiteText.hasPrefix("HTTP/1.1 403") && crossSiteText.contains("cross_site_request"))
        }
    }

    /// Slowloris: a hundred connections that never finish their request head are closed at
    /// the deadline (with 408), while complete requests on other connections are served.
    @Test func connectionsThatNeverFinishTheirHeadersAreClosedWhileOthersAreServed() async throws {
        // 10 s: in a full parallel test run on a loaded machine one complete request took up to
        // 9 s to be answered, and the complete ones are meant to be answered while the others wait.
        try await TestApp.run(testing: .live, overrides: ["CHAT_REQUEST_HEAD_TIMEOUT_SECONDS": "10"]) { api in
            let port = try #require(api.client.port)
            let partialHead = Array("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n".utf8)
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<100 {
                    group.addTask {
                        let received = try await RawConnection.exchange(port: port, request: partialHead)
                        return String(decoding: received, as: UTF8.self)
                    }
                }
                // Fresh connections, not the test client's: open since the server started, it
                // may be past its first deadline already on a busy machine. At once, not one by
                // one: each is a wait in the queue of a machine busy with the other tests.
                try await withThrowingTaskGroup(of: String.self) { complete in
                    for _ in 0..<5 {
                        complete.addTask {
                            String(
                                decoding: try await RawConnection.exchange(port: port, request: Self.liveCheck),
                                as: UTF8.self)
                        }
                    }
                    for try await answer in complete {
                        #expect(answer.hasPrefix("HTTP/1.1 200"), "got \(answer.prefix(40))")
                    }
                }
                var closed = 0
                for try await answer in group {
                    #expect(answer.hasPrefix("HTTP/1.1 408"), "got \(answer.prefix(40))")
                    closed += 1
                }
                #expect(closed == 100)
            }
            let after = try await RawConnection.exchange(port: port, request: Self.liveCheck)
            #expect(String(decoding: after, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        }
    }

    /// A server that stops closes at once the connections whose first request head has not
    /// arrived: a client's spare pooled connection, opened and left silent, held a test
    /// server's shutdown for the hour of the tests' head deadline (a CI run failed on it).
    @Test func stoppingClosesConnectionsThatHaveNotSentARequest() async throws {
        let connections = try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let silent = try await RawConnection.open(port: port)
            let partial = try await RawConnection.open(
                port: port, request: Array("GET /health/live HTTP/1.1\r\nHost: 127".utf8))
            // Answered on a later connection: the server has taken the two before it.
            let answer = try await RawConnection.exchange(port: port, request: Self.liveCheck)
            #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            return [silent, partial]
        }
        // The server has stopped, which it would not have before their deadline, an hour away,
        // had it waited for them: it closed both, without a word.
        for connection in connections {
            let received = try await connection.executeThenClose { inbound, _ in
                try await inbound.reduce(0) { $0 + $1.readableBytes }
            }
            #expect(received == 0)
        }
    }

    /// A keep-alive connection's later request heads have the same deadline as its first,
    /// from their first byte; a WebSocket, no longer speaking HTTP, has none.
    @Test func laterRequestHeadsHaveADeadlineTooButWebSocketsDoNot() async throws {
        // 5 s, not 1: on a loaded machine a 1 s deadline also closed heads (a WebSocket
        // handshake among them) that the server was merely slow to read.
        try await TestApp.run(testing: .live, overrides: ["CHAT_REQUEST_HEAD_TIMEOUT_SECONDS": "5"]) { api in
            let port = try #require(api.client.port)
            // Not through the test client: its connection, open since the server started, may
            // be past the deadline already on a busy machine.
            let alice = try await api.storedUser("alice")
            let received = try await RawConnection.exchangeInTwoSteps(
                port: port, first: Array("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8),
                until: #""status":"ok"}"#, then: Array("GET /health/live HTTP/1.1\r\nHost: 127".utf8))
            let answer = String(decoding: received, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 408"), "got \(answer.prefix(40))")

            let socket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            for round in 1...2 {
                socket.send(.typing(chatID: ChatID(999)))
                guard case .error(let code, _, _, _, _) = try await socket.next(.error) else { return }
                #expect(code == "not_a_member", "round \(round): the WebSocket still answers")
                if round == 1 { try await Task.sleep(for: .seconds(6)) }  // past any deadline the frame started
            }
            await socket.close()
        }
    }

    /// The server-wide cap: a connection over `CHAT_MAX_CONNECTIONS` gets 503 with the error
    /// body and is closed, the open ones keep working, and a freed place can be taken again.
    @Test func connectionsOverTheServerWideCapAreTurnedAway() async throws {
        try await TestApp.run(testing: .live, overrides: ["CHAT_MAX_CONNECTIONS": "6"]) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            let request = Array("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
            // The test's HTTP client holds some of the places: fill the rest with sockets.
            var sockets: [ChatWebSocketClient] = []
            while let socket = try? await ChatWebSocketClient.connect(port: port, token: alice.token) {
                sockets.append(socket)
                try #require(sockets.count <= 6, "the cap never turned a connection away")
            }
            // Turned away before it says anything (a request would meet a closed connection).
            let refused = String(decoding: try await RawConnection.exchange(port: port, request: []), as: UTF8.self)
            #expect(refused.hasPrefix("HTTP/1.1 503"), "got \(refused.prefix(40))")
            #expect(refused.contains("Retry-After: 1") && refused.contains(#""code":"too_many_connections""#))
            let open = try #require(sockets.first)
            open.send(.typing(chatID: ChatID(999)))
            guard case .error(let code, _, _, _, _) = try await open.next(.error) else { return }
            #expect(code == "not_a_member", "an open connection still answers")
            await sockets.removeLast().close()
            // The server counts the closed connection out when it sees it end.
            let deadline = ContinuousClock.now + Patience.wait
            var answer = ""
            while !answer.hasPrefix("HTTP/1.1 200"), ContinuousClock.now < deadline {
                let received = try? await RawConnection.exchange(port: port, request: request)
                answer = String(decoding: received ?? [], as: UTF8.self)
            }
            #expect(answer.hasPrefix("HTTP/1.1 200"), "the freed place can be taken")
            for socket in sockets { await socket.close() }
        }
    }

    /// Hand-built frames that break RFC 6455 close the connection with 1002.
    @Test(arguments: [
        (
            "an unmasked frame",
            RawConnection.frame(opcode: 0x1, payload: Array(#"{"type":"typing"}"#.utf8), masked: false)
        ),
        ("reserved bits", RawConnection.frame(opcode: 0x1, payload: Array("{}".utf8), reservedBits: 0b100)),
        ("a fragmented ping", RawConnection.frame(opcode: 0x9, payload: [1], fin: false)),
        ("a ping over 125 bytes", RawConnection.frame(opcode: 0x9, payload: Array(repeating: 7, count: 126))),
        ("an unknown opcode", RawConnection.frame(opcode: 0x3, payload: [])),
        ("a close code no one may send", RawConnection.frame(opcode: 0x8, payload: [0x03, 0xED])),
        ("a continuation with nothing to continue", RawConnection.frame(opcode: 0x0, payload: Array("x".utf8))),
    ])
    func protocolViolationsCloseWith1002(violation: String, frame: [UInt8]) async throws {
        try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            let handshake = RawConnection.handshake(port: port, headers: ["Authorization: Bearer \(alice.token)"])
            let closing = try await RawConnection.closing(port: port, request: handshake + frame)
            #expect(closing.responseHead.hasPrefix("HTTP/1.1 101"))
            #expect(closing.code == 1002, "\(violation): closed with \(closing.code) \(closing.reason)")
        }
    }

    /// Frames that arrive with the handshake, before the connection is set up, wait for it:
    /// they are answered after `ready`, in order.
    @Test func framesSentWithTheHandshakeAreAnsweredAfterReady() async throws {
        try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            let frames = (1...3).map { number in
                RawConnection.frame(opcode: 0x1, payload: Array(#"{"type":"typing","chat_id":\#(990 + number)}"#.utf8))
            }
            let received = try await RawConnection.exchange(
                port: port,
                request: RawConnection.handshake(port: port, headers: ["Authorization: Bearer \(alice.token)"])
                    + frames.joined(),
                until: #""chat_id":993"#)
            let text = String(decoding: received, as: UTF8.self)
            let positions = [#""type":"ready""#, #""chat_id":991"#, #""chat_id":992"#, #""chat_id":993"#].map {
                text.range(of: $0)?.lowerBound
            }
            #expect(positions.allSatisfy { $0 != nil }, "got \(text)")
            #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted(), "in order: \(text)")
        }
    }

    /// A server that shuts down closes its WebSocket connections with 1001 (going away), and
    /// waits for them to close before it stops.
    @Test func shuttingDownClosesConnectionsWith1001() async throws {
        let socket = try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            return try await ChatWebSocketClient.connect(port: port, token: alice.token)
        }
        let close = try await socket.closedByServer()
        #expect(close?.closeCode == .goingAway)
        #expect(close?.reason == "server shutting down")
    }

    @Test func aClientThatStopsAnsweringPingsIsClosed() async throws {
        try await TestApp.run(testing: .live, overrides: ["CHAT_WS_PING_SECONDS": "1"]) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            // Handshakes, then never reads a frame nor answers a ping.
            let received = try await RawConnection.exchange(
                port: port,
                request: RawConnection.handshake(port: port, headers: ["Authorization: Bearer \(alice.token)"]))
            let text = String(decoding: received, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 101"))
            #expect(received.contains(0x89), "the server pinged")
            #expect(received.contains(0x88), "then closed the connection")
        }
    }
}

@Suite("Slow consumers", .timeLimit(.minutes(5)))
struct SlowConsumerTests {
    /// A small outbox, and messages large enough to fill a socket in a few hundred.
    static let overrides = [
        "CHAT_WS_OUTBOX_FRAMES": "16", "CHAT_MAX_MESSAGE_LENGTH": "60000", "CHAT_WS_MAX_FRAME_BYTES": "100000",
        "CHAT_WS_SEND_RATE": "10000", "CHAT_WS_SEND_BURST": "10000",
    ]

    @Test func aClientThatStopsReadingIsClosedWhileOthersGetEverything() async throws {
        try await TestApp.run(testing: .live, overrides: Self.overrides) { api in
            let port = try #require(api.client.port)
            let (alice, bob, chat) = try await RealtimeContract.pair(api)
            let sender = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            let reader = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            _ = try await api.store.setAdmin(true, nameKey: "alice")
            // Bob's connection handshakes and then reads nothing: the socket fills, then his outbox.
            let count = 300
            let ((received, bobDropped), closedByServer) = try await RawConnection.silently(
                port: port,
                request: RawConnection.handshake(port: port, headers: ["Authorization: Bearer \(bob.token)"])
            ) {
                let text = String(repeating: "x", count: 50_000)
                var received: [MessagePayload] = []
                // In windows of 8, so that the connections that do read never hold 16 frames.
                for window in stride(from: 1, through: count, by: 8) {
                    let numbers = window..<min(window + 8, count + 1)
                    for number in numbers { sender.send(.send(chatID: chat.id, clientID: "m\(number)", text: text)) }
                    received += try await reader.deliveries(numbers.count, in: chat.id)
                    _ = try await sender.deliveries(numbers.count, in: chat.id)
                }
                // Still without reading a byte: the server must hang up on its own.
                let deadline = ContinuousClock.now + Patience.wait
                var liveConnections: Int64 = 3
                while liveConnections > 2, ContinuousClock.now < deadline {
                    liveConnections = try await api.send(.get, "/chat/sync/persistent", as: alice)
                        .decode(SyncReportPayload.self, expecting: .ok).liveConnections
                    try await Task.sleep(for: .milliseconds(200))
                }
                return (received, liveConnections == 2)
            }
            #expect(received.map(\.seq) == Array(1...Int64(count)), "the other connection got every message in order")
            #expect(bobDropped, "the server dropped the connection that stopped reading")
            #expect(closedByServer, "and closed the socket")
            await sender.close()
            await reader.close()
        }
    }

    /// A client that stops reading and stays silent past the close timeout is reset rather than
    /// closed behind the frames it never read: those would stay in the server's kernel, and
    /// the client would hear of the close only once TCP's retransmissions, backed off while it
    /// stalled, got through (docs/reliability.md, the slow consumer that was not closed).
    @Test func aClientStalledPastTheCloseTimeoutIsReset() async throws {
        try await TestApp.run(testing: .live, overrides: Self.overrides) { api in
            let port = try #require(api.client.port)
            let (alice, bob, chat) = try await RealtimeContract.pair(api)
            _ = try await api.store.setAdmin(true, nameKey: "alice")
            let sender = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            let stalled = try await RawConnection.open(
                port: port,
                request: RawConnection.handshake(port: port, headers: ["Authorization: Bearer \(bob.token)"]))
            let (dropped, wasReset) = try await stalled.executeThenClose { inbound, _ in
                let socket = try #require(stalled.channel as? any SocketOptionProvider)
                let text = String(repeating: "x", count: 50_000)
                var sent = 0
                var liveConnections: Int64 = 2
                while liveConnections > 1, sent < 1_000 {
                    for number in sent + 1...sent + 8 {
                        sender.send(.send(chatID: chat.id, clientID: "m\(number)", text: text))
                    }
                    _ = try await sender.deliveries(8, in: chat.id)
                    sent += 8
                    liveConnections = try await api.send(.get, "/chat/sync/persistent", as: alice)
                        .decode(SyncReportPayload.self, expecting: .ok).liveConnections
                }
                // Still not reading: the server's close timeout passes, and its reset arrives
                // (when the stalled socket has nothing in flight; otherwise at the first read).
                let deadline = ContinuousClock.now + Patience.wait
                while ContinuousClock.now < deadline,
                    (try? await socket.getTCPInfo().get().tcpi_state) == UInt8(TCP_ESTABLISHED)
                {
                    try await Task.sleep(for: .milliseconds(100))
                }
                do {
                    for try await _ in inbound {}
                    return (liveConnections == 1, false)
                } catch let error as IOError where error.errnoCode == ECONNRESET {
                    return (liveConnections == 1, true)
                }
            }
            #expect(dropped, "the server dropped the connection that stopped reading")
            #expect(wasReset, "the server reset the connection instead of closing it behind unread frames")
            await sender.close()
        }
    }
}
