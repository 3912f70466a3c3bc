import ChatConformance
import ChatProtocol
import ChatTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import ChatServer

@Suite("Health, metrics and logs", .timeLimit(.minutes(5)))
struct OperationsTests {
    @Test func healthChecksReportLivenessAndReadiness() async throws {
        try await TestApp.run { api in
            let live = try await api.send(.get, "/health/live")
            #expect(live.status == .ok && live.bodyText == #"{"status":"ok"}"#)
            #expect(try await api.send(.get, "/health/ready").status == .ok)
            try await api.store.migrateDown(steps: 1)
            let notReady = try await api.send(.get, "/health/ready")
            #expect(notReady.status == .serviceUnavailable && notReady.error?.code == "migrations_pending")
            try await api.store.migrateUp()
            #expect(try await api.send(.get, "/health/ready").status == .ok)
        }
    }

    @Test func metricsCountWhatHappened() async throws {
        try await TestApp.run(testing: .live, overrides: ["CHAT_WS_CONNECTIONS_PER_USER": "1"]) { api in
            let port = try #require(api.client.port)
            let (alice, bob, chat) = try await RealtimeContract.pair(api)
            let aliceSocket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            var secondSocket = WebSocketTests.handshake
            secondSocket[.authorization] = "Bearer \(alice.token)"
            #expect(try await api.send(.get, "/ws", headers: secondSocket).status == .tooManyRequests)
            let bobSocket = try await ChatWebSocketClient.connect(port: port, token: bob.token)
            aliceSocket.send(.send(chatID: chat.id, clientID: "m1", text: "hi"))
            _ = try await bobSocket.deliveries(1, in: chat.id)
            aliceSocket.send(.send(chatID: chat.id, clientID: "m1", text: "hi"))
            _ = try await aliceSocket.next(.ack)
            _ = try await aliceSocket.next(.ack)
            _ = try await api.send(.get, "/nope")
            let metrics = try await api.send(.get, "/metrics")
            #expect(metrics.status == .ok && metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = metrics.bodyText
            for line in [
                "chat_messages_stored_total 1", "chat_duplicates_suppressed_total 1", "chat_messages_delivered_total 2",
                "chat_websocket_connections 2.0", "chat_connected_users 2.0",
                #"chat_http_requests_total{route="/user",status="201"} 2"#,
                #"chat_http_requests_total{route="NotFound",status="404"} 1"#, "chat_send_ack_seconds_count 2",
                #"chat_connections_refused_total{reason="user_limit"} 1"#,
                #"chat_connections_refused_total{reason="server_limit"} 0"#,
                // Every lease of a database connection ended: none waits, none is held.
                "chat_database_connections_in_use 0.0", "chat_database_connections_waiting 0.0",
            ] {
                #expect(text.contains(line), "\(line) in:\n\(text)")
            }
            for gauge in ["process_resident_memory_bytes", "process_open_fds", "process_max_fds"] {
                let value = text.split(separator: "\n").first { $0.hasPrefix(gauge + " ") }?.split(separator: " ").last
                #expect((value.flatMap { Double($0) } ?? 0) > 0, "\(gauge) in:\n\(text)")
            }
            // Every metric says what it counts (promtool check metrics asks for it too).
            let typed = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map {
                $0.split(separator: " ")[2]
            }
            let helped = Set(
                text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
            #expect(
                !typed.isEmpty && typed.allSatisfy(helped.contains),
                "no help text: \(typed.filter { !helped.contains($0) })")
            await aliceSocket.close()
            await bobSocket.close()
        }
    }

    @Test func aDatabaseLeaseCountsAsWaitingThenInUseThenNeither() {
        let telemetry = Telemetry()
        func counts() -> (waiting: String, inUse: String) {
            let text = String(decoding: telemetry.registry.emitToBuffer(), as: UTF8.self)
            func value(_ name: String) -> String {
                text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map {
                    String($0.dropFirst(name.count + 1))
                }
                    ?? "missing"
            }
            return (value("chat_database_connections_waiting"), value("chat_database_connections_in_use"))
        }
        let granted = telemetry.metrics.databaseConnectionRequested()
        let neverGranted = telemetry.metrics.databaseConnectionRequested()
        #expect(counts() == ("2.0", "0.0"))
        granted.granted()
        granted.granted()
        #expect(counts() == ("1.0", "1.0"), "granting twice counts once")
        granted.end()
        neverGranted.end()
        granted.end()
        #expect(counts() == ("0.0", "0.0"), "ending twice counts once")
    }

    @Test func metricsCanRequireAToken() async throws {
        try await TestApp.run(overrides: ["CHAT_METRICS_TOKEN": "scrape-me"]) { api in
            let anonymous = try await api.send(.get, "/metrics")
            #expect(anonymous.status == .unauthorized && anonymous.error?.code == "not_authenticated")
            let scraper = try await api.send(.get, "/metrics", headers: [.authorization: "Bearer scrape-me"])
            #expect(scraper.status == .ok)
        }
    }

    @Test func everyResponseCarriesItsRequestID() async throws {
        try await TestApp.run { api in
            let ok = try await api.send(.get, "/health/live")
            let failed = try await api.send(.get, "/users/me")
            let ids = [ok, failed].compactMap { $0.headers[HTTPField.Name("X-Request-ID")!] }
            #expect(ids.count == 2 && ids[0] != ids[1])
        }
    }

    @Test func secretsAndMessagesNeverReachTheLogs() async throws {
        let lines = LogLines()
        let logger = Logger(label: "chat-server") { label in
            ChatLogHandler(label: label, format: .json, level: .trace, output: lines.append)
        }
        let password = "correct-horse-battery-staple"
        let secretText = "the launch code is 0000"
        try await TestApp.run(testing: .live, logger: logger) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice", password: password)
            let chat = try await api.createChat("Secrets", as: alice)
            let socket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            socket.send(.send(chatID: chat.id, clientID: "s1", text: secretText))
            _ = try await socket.next(.ack)
            _ = try await api.send(.get, "/users/me", headers: [.cookie: "access_token=\(alice.token)"])
            _ = try await api.send(.get, "/history/\(chat.id)%0Aforged%20line", as: alice)
            await socket.close()
            let logged = lines.all
            #expect(logged.count > 10, "the server logged at trace level")
            for secret in [password, alice.token, secretText] {
                #expect(!logged.contains { $0.contains(secret) }, "\(secret) was logged")
            }
            for line in logged {
                #expect(!line.contains("\n"), "one record per line")
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "\(line) is JSON")
            }
        }
    }

    @Test func textLogsEscapeControlCharacters() {
        let lines = LogLines()
        let logger = Logger(label: "test") {
            ChatLogHandler(label: $0, format: .text, level: .info, output: lines.append)
        }
        logger.info("hello\nforged 2026-01-01 error", metadata: ["user": "bob\r\nadmin=true", "tab": "a\tb"])
        #expect(lines.all.count == 1)
        let line = lines.all.first ?? ""
        #expect(!line.contains("\n") && !line.contains("\r"))
        #expect(
            line.contains(#"hello\nforged"#) && line.contains(#"user=bob\r\nadmin=true"#) && line.contains(#"tab=a\tb"#)
        )
    }
}

/// Log lines captured by a test.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    @Sendable func append(_ line: String) {
        lines.withLock { $0.append(line) }
    }
}
