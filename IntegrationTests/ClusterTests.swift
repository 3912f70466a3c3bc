import ChatConformance
import ChatProtocol
import ChatServer
import ChatTestSupport
import Foundation
import HummingbirdTesting
import Testing

/// Several nodes (in-process applications, each with its own store, hub and cluster link) on
/// one disposable PostgreSQL database, with real WebSocket clients on each.
@Suite("Several nodes on one PostgreSQL", .timeLimit(.minutes(5)))
struct ClusterTests {
    /// Pipelined sends beyond the default per-connection rate.
    static let unthrottled = ["CHAT_WS_SEND_RATE": "100000", "CHAT_WS_SEND_BURST": "100000"]
    /// For tests of what the heartbeat does, on one node (whose own heartbeat cannot expire).
    static let quickHeartbeats = ["CHAT_HEARTBEAT_INTERVAL_MS": "200"]

    @Test("two nodes honor the real-time contract", arguments: RealtimeContract.checks)
    func honorsContractAcrossNodes(_ check: RealtimeCheck) async throws {
        try await TestApp.runNodes(2) { nodes in
            try await check.run(RealtimeFixture(api: nodes[0], ports: try nodes.map { try #require($0.client.port) }))
        }
    }

    /// One pair of nodes for every check, as `chatsim verify` runs them with two URLs.
    @Test func twoNodesPassTheConformanceChecks() async throws {
        try await TestApp.runNodes(2) { nodes in
            try await ConformanceSuite.expectPasses(ports: try nodes.map { try #require($0.client.port) })
        }
    }

    @Test func concurrentSendersOnThreeNodesAllSeeOneGapFreeOrder() async throws {
        try await TestApp.runNodes(3, overrides: Self.unthrottled) { nodes in
            let api = nodes[0]
            let users = try await (0..<3).asyncMap { try await api.user("user\($0)") }
            let chat = try await api.createChat("Busy", as: users[0])
            for user in users.dropFirst() { _ = try await api.addUser(user.id, to: chat.id, as: users[0]) }
            // Each user sends from the node of their index and watches from the next one.
            let senders = try await (0..<3).asyncMap { try await Self.connect(users[$0], to: nodes[$0]) }
            let watchers = try await (0..<3).asyncMap { try await Self.connect(users[$0], to: nodes[($0 + 1) % 3]) }
            let perSender = 60
            for (index, socket) in senders.enumerated() {
                for number in 0..<perSender {
                    socket.send(.send(chatID: chat.id, clientID: "s\(index)-\(number)", text: "message \(number)"))
                }
            }
            let total = 3 * perSender
            try await withThrowingTaskGroup(of: [Int64].self) { group in
                for socket in senders + watchers {
                    group.addTask {
                        try await socket.deliveries(total, in: chat.id).map(\.seq)
                    }
                }
                for try await seqs in group {
                    #expect(seqs == Array(1...Int64(total)))
                }
            }
            for socket in senders + watchers { await socket.close() }
        }
    }

    @Test func aClientIDRacedThroughTwoNodesIsStoredOnce() async throws {
        try await TestApp.runNodes(2) { nodes in
            let (alice, bob, chat) = try await RealtimeContract.pair(nodes[0])
            let phone = try await Self.connect(alice, to: nodes[0])
            let laptop = try await Self.connect(alice, to: nodes[1])
            let bobSocket = try await Self.connect(bob, to: nodes[1])
            let rounds = 20
            for round in 0..<rounds {
                phone.send(.send(chatID: chat.id, clientID: "raced-\(round)", text: "from the phone"))
                laptop.send(.send(chatID: chat.id, clientID: "raced-\(round)", text: "from the laptop"))
                let fromPhone = try await phone.ack()
                let fromLaptop = try await laptop.ack()
                #expect(fromPhone.message == fromLaptop.message, "both devices get the same message")
                #expect(fromPhone.message.seq == Int64(round + 1), "one seq per round")
                #expect(fromPhone.duplicate != fromLaptop.duplicate, "exactly one of them stored it")
            }
            let received = try await bobSocket.deliveries(rounds, in: chat.id)
            #expect(received.map(\.seq) == Array(1...Int64(rounds)))
            let history = try await nodes[1].send(.get, "/history/\(chat.id)?limit=100", as: bob)
                .decode([MessagePayload].self, expecting: .ok)
            #expect(history.count == rounds)
            for socket in [phone, laptop, bobSocket] { await socket.close() }
        }
    }

    @Test func aMemberRemovedDuringAFloodOnAnotherNodeStopsReceivingAtOnce() async throws {
        try await TestApp.runNodes(2, overrides: Self.unthrottled) { nodes in
            let api = nodes[0]
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let chat = try await api.createChat("Flood", as: alice)
            for user in [bob, carol] { _ = try await api.addUser(user.id, to: chat.id, as: alice) }
            let aliceSocket = try await Self.connect(alice, to: nodes[0])
            let bobSocket = try await Self.connect(bob, to: nodes[1])
            let carolSocket = try await Self.connect(carol, to: nodes[1])
            let total = 400
            for number in 1...total {
                aliceSocket.send(.send(chatID: chat.id, clientID: "flood-\(number)", text: "\(number)"))
            }
            _ = try await bobSocket.deliveries(20, in: chat.id)
            #expect(try await api.removeUser(bob.id, from: chat.id, as: alice).status == .ok)
            let lastSeqAfterRemoval = try #require(try await api.store.chat(chat.id, member: alice.id)).lastSeq

            // Bob's connection on the other node: messages, then member_removed, then nothing
            // of the chat; his send is refused.
            let removed = ServerFrame.memberRemoved(chatID: chat.id, userID: bob.id)
            let untilRemoved = try await bobSocket.frames(until: .memberRemoved)
            #expect(untilRemoved.last == removed)
            let seen = untilRemoved.compactMap(\.message).map(\.seq)
            #expect(seen.allSatisfy { $0 <= lastSeqAfterRemoval }, "nothing stored after the removal")
            bobSocket.send(.send(chatID: chat.id, clientID: "late", text: "hello?"))
            let afterRemoval = try await bobSocket.frames(until: .error)
            #expect(afterRemoval.compactMap(\.message).isEmpty, "no message after member_removed")
            #expect(
                afterRemoval.last
                    == .error(
                        code: "not_a_member", message: ChatError.notAMember.message, ref: "late", chatID: chat.id))

            // Carol, on the same node, gets the whole flood and hears of the removal once (the
            // removal may commit after the last message of the flood).
            var carolFrames: [ServerFrame] = []
            while carolFrames.compactMap(\.message).count < total || !carolFrames.contains(removed) {
                carolFrames.append(try await carolSocket.next())
            }
            #expect(carolFrames.compactMap(\.message).map(\.seq) == Array(1...Int64(total)))
            #expect(carolFrames.filter { $0 == removed }.count == 1)
            for socket in [aliceSocket, bobSocket, carolSocket] { await socket.close() }
        }
    }

    @Test func aListenerConnectionTerminatedMidTrafficLosesNothing() async throws {
        try await TestApp.runNodes(2, overrides: Self.unthrottled) { nodes in
            let (alice, bob, chat) = try await RealtimeContract.pair(nodes[0])
            let location = try Self.postgres(nodes[0])
            let aliceSocket = try await Self.connect(alice, to: nodes[0])
            let bobSocket = try await Self.connect(bob, to: nodes[1])
            let total = 600
            for number in 1...total {
                aliceSocket.send(.send(chatID: chat.id, clientID: "m\(number)", text: "\(number)"))
            }
            var seqs = try await bobSocket.deliveries(50, in: chat.id).map(\.seq)
            let terminated = try await TestPostgres.execute(
                """
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = 'node-2' AND query LIKE 'LISTEN%'
                """, on: location)
            #expect(terminated == 1, "node-2's listening connection was found and terminated")
            seqs += try await bobSocket.deliveries(total - 50, in: chat.id).map(\.seq)
            #expect(seqs == Array(1...Int64(total)))
            try await nodes[1].waitUntilReady()
            await aliceSocket.close()
            await bobSocket.close()
        }
    }

    @Test func typingReadsPresenceAndLogoutCrossNodes() async throws {
        try await TestApp.runNodes(2) { nodes in
            let (alice, bob, chat) = try await RealtimeContract.pair(nodes[0])
            let aliceSocket = try await Self.connect(alice, to: nodes[0])
            let bobSocket = try await Self.connect(bob, to: nodes[1])
            #expect(try await aliceSocket.next(.presence) == .presence(userID: bob.id, online: true))

            bobSocket.send(.typing(chatID: chat.id))
            #expect(try await aliceSocket.next(.typing) == .typing(chatID: chat.id, userID: bob.id))
            aliceSocket.send(.send(chatID: chat.id, clientID: "hi", text: "hi"))
            _ = try await bobSocket.deliveries(1, in: chat.id)
            bobSocket.send(.read(chatID: chat.id, seq: 1))
            #expect(try await aliceSocket.next(.read) == .read(chatID: chat.id, userID: bob.id, seq: 1))

            // Logging out through the first node ends bob's session on the second.
            #expect(try await nodes[0].send(.post, "/auth/logout", as: bob).status == .noContent)
            let close = try await bobSocket.closedByServer()
            #expect(close?.closeCode == .policyViolation)
            #expect(try await nodes[1].send(.get, "/users/me", as: bob).status == .unauthorized)
            let presence = try await aliceSocket.next(.presence)
            #expect(presence == .presence(userID: bob.id, online: false), "\(presence)")
            await aliceSocket.close()
        }
    }

    /// A node hears its own announcements back on its LISTEN connection, which measures how
    /// long notifications between nodes take.
    @Test func aNodeMeasuresItsNotificationLag() async throws {
        try await TestApp.runNodes(2) { nodes in
            let (alice, bob, chat) = try await RealtimeContract.pair(nodes[0])
            let aliceSocket = try await Self.connect(alice, to: nodes[0])
            let bobSocket = try await Self.connect(bob, to: nodes[1])
            bobSocket.send(.typing(chatID: chat.id))
            #expect(try await aliceSocket.next(.typing) == .typing(chatID: chat.id, userID: bob.id))
            let metrics = try await nodes[1].metrics { !$0.contains("chat_cluster_notify_lag_seconds_count 0") }
            #expect(
                metrics.contains("chat_cluster_listening 1.0")
                    && metrics.contains("chat_cluster_notify_lag_seconds_count"), "\(metrics)")
            await aliceSocket.close()
            await bobSocket.close()
        }
    }

    @Test func aPasswordChangedThroughOneNodeClosesTheUsersSocketsOnAnother() async throws {
        try await TestApp.runNodes(2) { nodes in
            let alice = try await nodes[0].user("alice")
            let socket = try await Self.connect(alice, to: nodes[1])
            let change = ChangePasswordRequest(currentPassword: "password123", newPassword: "a-new-password-1")
            #expect(try await nodes[0].send(.post, "/user/password", json: change, as: alice).status == .ok)
            #expect(try await socket.closedByServer()?.closeCode == .policyViolation)
            #expect(try await nodes[1].send(.get, "/users/me", as: alice).status == .unauthorized)
        }
    }

    @Test func aMessageNobodyNotifiedIsDeliveredByTheHeartbeatsCheck() async throws {
        try await TestApp.runNodes(1, overrides: Self.quickHeartbeats) { nodes in
            let (alice, bob, chat) = try await RealtimeContract.pair(nodes[0])
            let bobSocket = try await Self.connect(bob, to: nodes[0])
            // Stored beside the server: no publication, and no notification (the node is alone,
            // and would skip its own anyway). Only the check of the chat's last seq finds it.
            _ = try await nodes[0].store.appendMessage(
                NewMessage(chatID: chat.id, senderID: alice.id, clientID: "unannounced", text: "hello"))
            let delivered = try await bobSocket.deliveries(1, in: chat.id)
            #expect(delivered.map(\.clientID) == ["unannounced"])
            await bobSocket.close()
        }
    }

    @Test func anAdminSyncOnOneNodeRebuildsMembershipsOnEveryNode() async throws {
        try await TestApp.runNodes(2) { nodes in
            let api = nodes[0]
            let (admin, bob) = (try await api.user("admin"), try await api.user("bob"))
            _ = try await api.store.setAdmin(true, nameKey: "admin")
            let chat = try await api.createChat("Elsewhere", as: admin)
            let bobSocket = try await Self.connect(bob, to: nodes[1])
            // Changed in the database only: no node hears of it until an admin sync.
            try await api.store.addMember(bob.id, to: chat.id)
            #expect(try await api.send(.get, "/chat/sync/persistent", as: admin).status == .ok)
            guard case .memberAdded(let chatID, let userID, _?) = try await bobSocket.next(.memberAdded) else {
                throw ClusterTestFailure("bob's connection on the other node was not subscribed")
            }
            #expect(chatID == chat.id && userID == bob.id)
            await bobSocket.close()
        }
    }

    @Test func aNodeThatStopsBeatingTakesItsUsersPresenceWithIt() async throws {
        try await TestApp.runNodes(1, overrides: Self.quickHeartbeats) { nodes in
            let (alice, bob, _) = try await RealtimeContract.pair(nodes[0])
            let location = try Self.postgres(nodes[0])
            let aliceSocket = try await Self.connect(alice, to: nodes[0])
            // A node that beat, announced bob, and then crashed: it never beats again. Its
            // heartbeat expires only once alice has seen bob online: a heartbeat that expired
            // before the node heard of bob (a loaded machine is that slow) would make the
            // online and offline announcements race.
            try await TestPostgres.execute(
                """
                WITH beat AS (
                    INSERT INTO cluster_nodes VALUES ('crashed', now() + interval '1 hour', 1, ARRAY[\(bob.id)]::bigint[])
                )
                SELECT pg_notify('chat_cluster', E'crashed\\n{"presence":{"user":\(bob.id),"online":true,"version":2}}')
                """, on: location)
            let online = try await aliceSocket.next(.presence)
            #expect(online == .presence(userID: bob.id, online: true), "got \(online)")
            try await TestPostgres.execute(
                "UPDATE cluster_nodes SET expires_at = now() - interval '1 second' WHERE node = 'crashed'", on: location
            )
            let offline = try await aliceSocket.next(.presence)
            #expect(offline == .presence(userID: bob.id, online: false), "got \(offline)")
            await aliceSocket.close()
        }
    }

    @Test func aNodeThatStopsSaysSoAndItsUsersGoOfflineAtOnce() async throws {
        // No heartbeat after the first during the test: the offline can only come from the
        // notice. (A heartbeat would also end the stopped node's presence, as its row is gone.)
        try await TestApp.runNodes(1, overrides: ["CHAT_HEARTBEAT_INTERVAL_MS": "60000"]) { nodes in
            let (alice, bob, _) = try await RealtimeContract.pair(nodes[0])
            let location = try Self.postgres(nodes[0])
            let aliceSocket = try await Self.connect(alice, to: nodes[0])
            // A node announces bob, then stops.
            try await TestPostgres.execute(
                #"SELECT pg_notify('chat_cluster', E'stopping\n{"presence":{"user":\#(bob.id),"online":true,"version":1}}')"#,
                on: location)
            #expect(try await aliceSocket.next(.presence) == .presence(userID: bob.id, online: true))
            try await TestPostgres.execute(
                "SELECT pg_notify('chat_cluster', E'stopping\\n{\"stopped\":{}}')", on: location)
            #expect(try await aliceSocket.next(.presence) == .presence(userID: bob.id, online: false))
            await aliceSocket.close()
        }
    }

    // MARK: Helpers

    static func connect(_ user: TestUser, to node: APITestClient) async throws -> ChatWebSocketClient {
        try await ChatWebSocketClient.connect(port: try #require(node.client.port), token: user.token)
    }

    static func postgres(_ node: APITestClient) throws -> PostgresLocation {
        guard case .postgres(let location) = node.database else { throw ClusterTestFailure("not on PostgreSQL") }
        return location
    }
}

struct ClusterTestFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
