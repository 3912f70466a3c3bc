import ChatConformance
import ChatProtocol
import ChatTestSupport
import HTTPTypes
import HummingbirdTesting
import Logging
import Testing

@testable import ChatServer

/// Limits that hold for all nodes together: failed log-ins per account and per address, and
/// each user's connections (docs/security.md, "Limits").
@Suite("Limits across nodes", .timeLimit(.minutes(5)))
struct ClusterLimitsTests {
    static let handshake: HTTPFields = [
        .connection: "Upgrade", .upgrade: "websocket", .secWebSocketVersion: "13",
        .secWebSocketKey: "dGhlIHNhbXBsZSBub25jZQ==",
    ]

    /// `GET /ws` as `user` with the handshake's headers: for refusals, which come as HTTP.
    static func refusedHandshake(at node: APITestClient, as user: TestUser) async throws -> TestResponse {
        var headers = handshake
        headers[.authorization] = "Bearer \(user.token)"
        return try await node.send(.get, "/ws", headers: headers)
    }

    static func isTooManyAttempts(_ answer: TestResponse) -> Bool {
        answer.status == .tooManyRequests && answer.error?.code == ErrorCode.tooManyAttempts.rawValue
    }

    @Test func theEleventhWrongPasswordThroughAlternatingNodesGets429() async throws {
        try await TestApp.runNodes(2) { nodes in
            try await nodes[0].register("alice")
            try await nodes[0].register("bob")
            for attempt in 0..<10 {
                let wrong = try await nodes[attempt % 2].logIn("alice", password: "not-her-password")
                #expect(wrong.status == .unauthorized, "attempt \(attempt + 1) on node \(attempt % 2 + 1)")
            }
            for node in nodes {
                let refused = try await node.logIn("alice", password: "not-her-password")
                #expect(Self.isTooManyAttempts(refused), "\(refused.status) \(refused.bodyText)")
                #expect(Self.isTooManyAttempts(try await node.logIn("alice")), "even with the right password")
            }
            #expect(try await nodes[1].logIn("bob").status == .ok, "other accounts are unaffected")
        }
    }

    @Test func anAddressIsLimitedAcrossNodes() async throws {
        try await TestApp.runNodes(2, overrides: ["CHAT_LOGIN_FAILURES_PER_ADDRESS": "3"]) { nodes in
            try await nodes[0].register("alice")
            for (attempt, name) in ["x1", "x2", "x3"].enumerated() {
                #expect(try await nodes[attempt % 2].logIn(name).status == .unauthorized)
            }
            for node in nodes {
                #expect(Self.isTooManyAttempts(try await node.logIn("alice")), "the fourth attempt from this address")
            }
        }
    }

    @Test func aSuccessfulLogInOnOneNodeClearsTheAccountOnTheOther() async throws {
        try await TestApp.runNodes(2) { nodes in
            try await nodes[0].register("alice")
            for _ in 0..<9 {
                #expect(try await nodes[0].logIn("alice", password: "not-her-password").status == .unauthorized)
            }
            #expect(try await nodes[1].logIn("alice").status == .ok)
            for _ in 0..<10 {
                #expect(try await nodes[0].logIn("alice", password: "not-her-password").status == .unauthorized)
            }
            #expect(Self.isTooManyAttempts(try await nodes[1].logIn("alice")))
        }
    }

    @Test func theConnectionCapCountsEveryNodeAndAClosedConnectionGivesItsPlaceBack() async throws {
        try await TestApp.runNodes(2, overrides: ["CHAT_WS_CONNECTIONS_PER_USER": "2"]) { nodes in
            let ports = try nodes.map { try #require($0.client.port) }
            let alice = try await nodes[0].user("alice")
            let first = try await ChatWebSocketClient.connect(port: ports[0], token: alice.token)
            let second = try await ChatWebSocketClient.connect(port: ports[1], token: alice.token)
            for node in nodes {
                let third = try await Self.refusedHandshake(at: node, as: alice)
                #expect(third.status == .tooManyRequests, "\(third.status) \(third.bodyText)")
                #expect(third.error?.code == ErrorCode.tooManyConnections.rawValue)
            }
            await first.close()
            // The place comes back once node 1 has written the release: poll for it.
            let deadline = ContinuousClock.now + Patience.wait
            var replacement: ChatWebSocketClient?
            while replacement == nil, ContinuousClock.now < deadline {
                replacement = try? await ChatWebSocketClient.connect(port: ports[1], token: alice.token)
                if replacement == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            let opened = try #require(replacement, "the closed connection's place was never given back")
            #expect(try await Self.refusedHandshake(at: nodes[0], as: alice).status == .tooManyRequests)
            await opened.close()
            await second.close()
        }
    }

    @Test func connectionsRacingOnTwoNodesGetExactlyTheCap() async throws {
        try await TestApp.runNodes(2, overrides: ["CHAT_WS_CONNECTIONS_PER_USER": "3"]) { nodes in
            let ports = try nodes.map { try #require($0.client.port) }
            let alice = try await nodes[0].user("alice")
            let opened = await withTaskGroup(of: ChatWebSocketClient?.self) { group in
                for attempt in 0..<24 {
                    group.addTask {
                        try? await ChatWebSocketClient.connect(port: ports[attempt % 2], token: alice.token)
                    }
                }
                return await group.reduce(into: []) { opened, client in client.map { opened.append($0) } }
            }
            #expect(opened.count == 3, "of 24 racing handshakes, \(opened.count) opened")
            for node in nodes {
                #expect(try await Self.refusedHandshake(at: node, as: alice).status == .tooManyRequests)
            }
            for client in opened { await client.close() }
        }
    }

    @Test func connectionsOfANodeWhoseHeartbeatExpiredDoNotCount() async throws {
        try await TestDatabase.postgres.withStore { store in
            let postgres = try #require(store as? PostgresChatStore)
            let alice = try await store.createUser(NewUser(name: "alice", email: "a@example.com", passwordHash: "x"))
            // Neither node has a heartbeat: each counts only its own rows, as a crashed one's do not.
            #expect(try await postgres.claimConnection(of: alice.id, on: "crashed", cap: 2) != nil)
            #expect(try await postgres.claimConnection(of: alice.id, on: "crashed", cap: 2) != nil)
            #expect(try await postgres.claimConnection(of: alice.id, on: "crashed", cap: 2) == nil, "its own count")
            #expect(try await postgres.claimConnection(of: alice.id, on: "alive", cap: 2) != nil)
            try await postgres.forgetConnections(on: "crashed")
            #expect(try await postgres.claimConnection(of: alice.id, on: "crashed", cap: 2) != nil, "a fresh start")
        }
    }

    @Test func failedLogInsAreCountedByTheDatabasesClockAndSweptOnceOld() async throws {
        try await TestDatabase.postgres.withStore { store in
            let log = try #require(store as? PostgresChatStore)
            try await log.recordFailure(of: ["account:alice", "address:10.0.0.1"], window: .seconds(60))
            try await log.recordFailure(of: ["account:alice"], window: .seconds(60))
            let recent = try await log.recentFailures(
                of: ["account:alice", "address:10.0.0.1", "account:bob"], within: .seconds(60))
            #expect(recent["account:alice"]?.count == 2)
            #expect(recent["address:10.0.0.1"]?.count == 1)
            #expect(recent["account:bob"] == nil)
            let leavesIn = try #require(recent["account:alice"]?.oldestLeavesIn)
            #expect(leavesIn > .zero && leavesIn <= .seconds(60), "\(leavesIn)")
            try await log.forgetFailures(of: "account:alice")
            #expect(try await log.recentFailures(of: ["account:alice"], within: .seconds(60)).isEmpty)
            // A failure recorded with an empty window sweeps every earlier one.
            try await log.recordFailure(of: ["account:carol"], window: .zero)
            let left = try await log.recentFailures(of: ["address:10.0.0.1", "account:carol"], within: .seconds(3600))
            #expect(left.keys.sorted() == ["account:carol"], "\(left)")
        }
    }
}
