import ChatConformance
import ChatProtocol
import ChatTestSupport
import Foundation
import HummingbirdTesting
import Testing

@testable import ChatServer

/// Reads from a real streaming standby (`pg_basebackup -R`), each test with a primary and
/// standby of its own: they pause, stop and restart it. One at a time: five pairs starting at
/// once, beside the rest of the suite and busy loops, starved other tests' connects past 5 s.
@Suite("Read replicas", .serialized, .timeLimit(.minutes(5)))
struct ReadReplicaTests {
    /// Runs `test` on a server whose store reads from the pair's standby, once the standby is
    /// in rotation.
    static func withReplicatedServer(
        maxLag: Duration = .seconds(600), _ test: @Sendable (ReplicatedPostgres, APITestClient) async throws -> Void
    ) async throws {
        try await ReplicatedPostgres.with { pair in
            try await TestApp.run(
                at: .postgres(pair.primary), testing: .live,
                overrides: [
                    "DATABASE_URL": url(of: pair.primary), "DATABASE_REPLICA_URLS": url(of: pair.replica),
                    "CHAT_REPLICA_MAX_LAG_MS": "\(Int(maxLag / .milliseconds(1)))",
                ]
            ) { api in
                _ = try await api.metrics { $0.contains(rotation(of: pair, is: 1)) }
                try await test(pair, api)
            }
        }
    }

    static func url(of location: PostgresLocation) -> String {
        "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database ?? "")?sslmode=disable"
    }

    /// The metric line that says whether the pair's standby is in rotation.
    static func rotation(of pair: ReplicatedPostgres, is value: Int) -> String {
        "chat_database_replica_in_rotation{replica=\"\(pair.replica.host):\(pair.replica.port)\"} \(value)"
    }

    /// The value of the counter `series` (name and labels), from `/metrics`.
    static func counter(_ series: String, in metrics: String) -> Int {
        let prefix = series + " "
        return metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }
            .flatMap { Int($0.dropFirst(prefix.count)) } ?? 0
    }

    /// Reads counted for `target` ("primary", or the standby), from `/metrics`.
    static func reads(by target: String, in metrics: String) -> Int {
        counter("chat_database_reads_total{target=\"\(target)\"}", in: metrics)
    }

    /// Runs `request` and returns its answer with where it was read (the target whose count of
    /// reads went up) and how many reads asked the primary for positions meanwhile.
    static func served<T>(
        by pair: ReplicatedPostgres, api: APITestClient, _ request: () async throws -> T
    ) async throws -> (answer: T, servedBy: String, positionChecks: Int) {
        let standby = "\(pair.replica.host):\(pair.replica.port)"
        let checks = "chat_database_replica_position_checks_total"
        let before = try await api.send(.get, "/metrics").bodyText
        let answer = try await request()
        let after = try await api.send(.get, "/metrics").bodyText
        let servedBy =
            reads(by: standby, in: after) > reads(by: standby, in: before)
            ? "replica" : reads(by: "primary", in: after) > reads(by: "primary", in: before) ? "primary" : "none"
        return (answer, servedBy, counter(checks, in: after) - counter(checks, in: before))
    }

    /// Reads the history page at `query` and returns it with where it was read.
    static func history(
        _ chat: ChatID, _ query: String, as user: TestUser, api: APITestClient, pair: ReplicatedPostgres
    ) async throws -> (page: [MessagePayload], servedBy: String, positionChecks: Int) {
        let (page, servedBy, positionChecks) = try await served(by: pair, api: api) {
            try await api.send(.get, "/history/\(chat)?\(query)", as: user).decode(
                [MessagePayload].self, expecting: .ok)
        }
        return (page, servedBy, positionChecks)
    }

    /// Reads the user's chat list and returns it with where it was read.
    static func chatList(
        as user: TestUser, api: APITestClient, pair: ReplicatedPostgres
    ) async throws -> (chats: [ChatSummaryPayload], servedBy: String) {
        let (chats, servedBy, _) = try await served(by: pair, api: api) {
            try await api.send(.get, "/chats", as: user).decode([ChatSummaryPayload].self, expecting: .ok)
        }
        return (chats, servedBy)
    }

    /// Searches the user's chats for `word` and returns the texts found with where they were read.
    static func search(
        _ word: String, as user: TestUser, api: APITestClient, pair: ReplicatedPostgres
    ) async throws -> (texts: [String], servedBy: String) {
        let (found, servedBy, _) = try await served(by: pair, api: api) {
            try await api.send(.get, "/search?q=\(word)", as: user).decode(SearchResultsPayload.self, expecting: .ok)
        }
        return (found.messages.map(\.message.text), servedBy)
    }

    @Test func historyIsReadFromACaughtUpReplica() async throws {
        try await Self.withReplicatedServer { pair, api in
            let alice = try await api.user("alice")
            let chat = try await api.createChat("Replicated", as: alice)
            try await api.storeMessages(5, in: chat.id, from: alice.id)
            try await pair.waitForReplay()
            let (page, servedBy, _) = try await Self.history(chat.id, "limit=100", as: alice, api: api, pair: pair)
            #expect(page.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(servedBy == "replica")
        }
    }

    /// A standby that has replayed where the primary was at the request's session check has
    /// everything the client had seen: the read asks the primary for nothing more. Once the
    /// primary has moved past it, the read needs the chat's positions from the primary again.
    @Test func aStandbyThatHasReplayedTheRequestNeedsNoPositionsFromThePrimary() async throws {
        try await Self.withReplicatedServer { pair, api in
            let alice = try await api.user("alice")
            let chat = try await api.createChat("Quiet", as: alice)
            try await api.storeMessages(3, in: chat.id, from: alice.id)
            try await pair.waitForReplay()
            // The node's check (every 250 ms) learns of the replay; until then reads check positions.
            let deadline = ContinuousClock.now + .seconds(10)
            var checksWithoutOne = false
            while !checksWithoutOne && ContinuousClock.now < deadline {
                let read = try await Self.history(chat.id, "limit=100", as: alice, api: api, pair: pair)
                #expect(read.page.map(\.seq) == [1, 2, 3] && read.servedBy == "replica")
                checksWithoutOne = read.positionChecks == 0
            }
            #expect(checksWithoutOne, "a read with nothing new on the primary was served without its positions")

            try await pair.pauseReplay()
            let other = try await api.createChat("Elsewhere", as: alice)
            try await api.storeMessages(1, in: other.id, from: alice.id, prefix: "elsewhere")
            let read = try await Self.history(chat.id, "limit=100", as: alice, api: api, pair: pair)
            #expect(read.page.map(\.seq) == [1, 2, 3] && read.servedBy == "replica", "the chat is replayed")
            #expect(read.positionChecks == 1, "the primary moved past the standby: the chat's positions were checked")
        }
    }

    /// With the standby's replay paused, a read that needs anything the standby lacks goes to
    /// the primary; one the standby can serve as the primary would still goes to the standby.
    @Test func aReplicaBehindTheChatIsNotReadFrom() async throws {
        try await Self.withReplicatedServer { pair, api in
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let chat = try await api.createChat("Paused", as: alice)
            _ = try await api.addUser(bob.id, to: chat.id, as: alice)
            let stored = try await api.storeMessages(6, in: chat.id, from: alice.id)
            try await pair.waitForReplay()
            try await pair.pauseReplay()

            let other = try await api.createChat("Elsewhere", as: alice)
            try await api.storeMessages(1, in: other.id, from: alice.id, prefix: "elsewhere")
            var read = try await Self.history(chat.id, "before_seq=4&limit=3", as: bob, api: api, pair: pair)
            #expect(read.page.map(\.seq) == [1, 2, 3])
            #expect(read.servedBy == "replica", "writes to other chats do not keep the standby from serving this one")

            try await api.storeMessages(1, in: chat.id, from: alice.id, prefix: "while-paused")
            read = try await Self.history(chat.id, "limit=100", as: bob, api: api, pair: pair)
            #expect(read.page.map(\.seq) == [1, 2, 3, 4, 5, 6, 7], "the message sent while paused is there")
            #expect(read.servedBy == "primary")

            _ = try await api.editMessage(stored[1].id, text: "edited while paused", as: alice)
            read = try await Self.history(chat.id, "before_seq=4&limit=3", as: bob, api: api, pair: pair)
            #expect(read.page.map(\.text) == ["message 1", "edited while paused", "message 3"])
            #expect(read.servedBy == "primary", "an edit the standby lacks sends the read to the primary")

            _ = try await api.addUser(carol.id, to: chat.id, as: alice)
            read = try await Self.history(chat.id, "before_seq=4&limit=3", as: carol, api: api, pair: pair)
            #expect(read.page.count == 3, "a member added while paused reads the history")
            let events = try await api.send(.get, "/chats/\(chat.id)/membership-events", as: carol).decode(
                [MembershipEventPayload].self, expecting: .ok)
            #expect(events.last?.userID == carol.id, "the membership events include the add the standby lacks")
            _ = try await api.removeUser(bob.id, from: chat.id, as: alice)
            #expect(
                try await api.send(.get, "/history/\(chat.id)", as: bob).status == .notFound,
                "a member removed while paused reads nothing")

            try await pair.resumeReplay()
            try await pair.waitForReplay()
            read = try await Self.history(chat.id, "limit=100", as: carol, api: api, pair: pair)
            #expect(read.page.count == 7 && read.servedBy == "replica", "caught up, the standby serves again")
        }
    }

    /// A chat list or a search reads every chat of the user: the standby serves it only with
    /// all of them, and the user's memberships, as the primary has them.
    @Test func chatListsAndSearchesNeedEveryChatOfTheUser() async throws {
        try await Self.withReplicatedServer { pair, api in
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let chat = try await api.createChat("Lists", as: alice)
            _ = try await api.addUser(bob.id, to: chat.id, as: alice)
            _ = try await api.store.appendMessage(
                NewMessage(chatID: chat.id, senderID: alice.id, clientID: "a1", text: "apples before the pause"))
            try await pair.waitForReplay()
            try await pair.pauseReplay()

            let elsewhere = try await api.createChat("Elsewhere", as: carol)
            _ = try await api.store.appendMessage(
                NewMessage(chatID: elsewhere.id, senderID: carol.id, clientID: "c1", text: "apples elsewhere"))
            var list = try await Self.chatList(as: bob, api: api, pair: pair)
            #expect(list.chats.map(\.lastMessage?.text) == ["apples before the pause"])
            #expect(list.servedBy == "replica", "writes to chats bob is not in do not keep the standby from serving")
            var found = try await Self.search("apples", as: bob, api: api, pair: pair)
            #expect(found.texts == ["apples before the pause"] && found.servedBy == "replica")

            _ = try await api.store.appendMessage(
                NewMessage(chatID: chat.id, senderID: alice.id, clientID: "a2", text: "apples while paused"))
            list = try await Self.chatList(as: bob, api: api, pair: pair)
            #expect(list.chats.map(\.lastMessage?.text) == ["apples while paused"] && list.servedBy == "primary")
            found = try await Self.search("apples", as: bob, api: api, pair: pair)
            #expect(found.texts == ["apples while paused", "apples before the pause"] && found.servedBy == "primary")

            let joined = try await api.createChat("Joined while paused", as: carol)
            _ = try await api.addUser(bob.id, to: joined.id, as: carol)
            list = try await Self.chatList(as: bob, api: api, pair: pair)
            #expect(Set(list.chats.map(\.id)) == [chat.id, joined.id] && list.servedBy == "primary")
            _ = try await api.removeUser(bob.id, from: chat.id, as: alice)
            list = try await Self.chatList(as: bob, api: api, pair: pair)
            #expect(list.chats.map(\.id) == [joined.id] && list.servedBy == "primary", "a removal the standby lacks")
            found = try await Self.search("apples", as: bob, api: api, pair: pair)
            #expect(found.texts.isEmpty && found.servedBy == "primary")

            try await pair.resumeReplay()
            try await pair.waitForReplay()
            list = try await Self.chatList(as: bob, api: api, pair: pair)
            #expect(list.chats.map(\.id) == [joined.id] && list.servedBy == "replica", "caught up, the standby serves")
        }
    }

    /// A user search has no positions to compare: a standby serves it only when it is known to
    /// have replayed where the primary was at the request's session check.
    @Test func userSearchGoesToAStandbyKnownToHaveReplayedTheRequest() async throws {
        try await Self.withReplicatedServer { pair, api in
            let alice = try await api.user("alice")
            try await pair.waitForReplay()
            let search = { @Sendable in
                try await Self.served(by: pair, api: api) {
                    try await api.send(.get, "/users?q=ali", as: alice).decode([UserPayload].self, expecting: .ok)
                        .map(\.name)
                }
            }
            // The node's check (every 250 ms) learns of the replay.
            let deadline = ContinuousClock.now + .seconds(10)
            var found = try await search()
            while found.servedBy != "replica" && ContinuousClock.now < deadline { found = try await search() }
            #expect(found.answer == ["alice"] && found.servedBy == "replica")

            try await pair.pauseReplay()
            _ = try await api.user("alina")
            found = try await search()
            #expect(found.answer == ["alice", "alina"] && found.servedBy == "primary", "a user the standby lacks")

            try await pair.resumeReplay()
            try await pair.waitForReplay()
            found = try await search()
            while found.servedBy != "replica" && ContinuousClock.now < deadline + .seconds(10) {
                found = try await search()
            }
            #expect(found.answer == ["alice", "alina"] && found.servedBy == "replica")
        }
    }

    @Test func aReplicaLaggingPastTheLimitLeavesRotationAndComesBack() async throws {
        try await Self.withReplicatedServer(maxLag: .milliseconds(300)) { pair, api in
            let alice = try await api.user("alice")
            let chat = try await api.createChat("Lagging", as: alice)
            try await pair.pauseReplay()
            try await api.storeMessages(1, in: chat.id, from: alice.id)
            _ = try await api.metrics { $0.contains(Self.rotation(of: pair, is: 0)) }
            let read = try await Self.history(chat.id, "before_seq=1&limit=1", as: alice, api: api, pair: pair)
            #expect(read.servedBy == "primary", "out of rotation, the standby serves nothing")
            try await pair.resumeReplay()
            _ = try await api.metrics { $0.contains(Self.rotation(of: pair, is: 1)) }
        }
    }

    /// The standby stops at once while readers and a writer go on: every read is answered, with
    /// every message stored before it began, and the standby is back in rotation once it runs.
    @Test func aReplicaKilledUnderLoadLosesNothing() async throws {
        try await Self.withReplicatedServer { pair, api in
            let alice = try await api.user("alice")
            let chat = try await api.createChat("Killed", as: alice)
            try await api.storeMessages(20, in: chat.id, from: alice.id)
            try await pair.waitForReplay()
            try await withThrowingTaskGroup { group in
                for reader in 0..<4 {
                    group.addTask {
                        for _ in 0..<40 {
                            let stored = try await api.store.chat(chat.id, member: alice.id)?.lastSeq ?? 0
                            let page = try await api.send(.get, "/history/\(chat.id)?limit=1000", as: alice).decode(
                                [MessagePayload].self, expecting: .ok)
                            #expect(page.map(\.seq) == Array(1...Int64(page.count)), "reader \(reader): no gaps")
                            #expect(page.count >= stored, "reader \(reader): nothing stored before the read is missing")
                        }
                    }
                }
                group.addTask {
                    try await api.storeMessages(20, in: chat.id, from: alice.id, prefix: "during")
                    try await pair.stopReplica()
                    try await api.storeMessages(20, in: chat.id, from: alice.id, prefix: "after")
                }
                try await group.waitForAll()
            }
            _ = try await api.metrics { $0.contains(Self.rotation(of: pair, is: 0)) }
            try await pair.startReplica()
            _ = try await api.metrics { $0.contains(Self.rotation(of: pair, is: 1)) }
            try await pair.waitForReplay()
            let read = try await Self.history(chat.id, "limit=1000", as: alice, api: api, pair: pair)
            #expect(read.page.count == 60 && read.servedBy == "replica")
        }
    }

    /// `chatsim verify`'s single-node checks against a server reading from a standby. Which
    /// reads the standby serves depends on how soon it replays what a check just wrote; the
    /// checks must pass either way.
    @Test func passesTheConformanceChecksWithAReplica() async throws {
        try await Self.withReplicatedServer { _, api in
            try await ConformanceSuite.expectPasses(
                ConformanceSuite.checks.filter { $0.nodes == 1 }, ports: [try #require(api.client.port)])
        }
    }
}
