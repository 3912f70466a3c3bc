import ChatProtocol
import ChatServer
import ChatTestSupport
import Testing

@Suite("SQLite store")
struct SQLiteStoreTests {
    @Test("honors the store contract", arguments: StoreContract.checks)
    func honorsContract(_ check: StoreContractCheck) async throws {
        try await TestDatabase.sqlite.withStore { store in try await check.run(store) }
    }

    @Test func fiftyConcurrentWritersNeverSeeALockedDatabase() async throws {
        try await TestDatabase.sqlite.withStore { store in
            let owner = try await store.createUser(
                NewUser(name: "owner", email: "owner@example.com", passwordHash: "h"))
            let chat = try await store.createChat(name: "busy", type: .group, creator: owner.id)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<50 {
                    group.addTask {
                        let user = try await store.createUser(
                            NewUser(name: "writer\(writer)", email: "w\(writer)@example.com", passwordHash: "h"))
                        try await store.addMember(user.id, to: chat.id)
                        for index in 0..<5 {
                            _ = try await store.appendMessage(
                                NewMessage(chatID: chat.id, senderID: user.id, clientID: "\(index)", text: "hi"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let counts = try await store.counts()
            #expect(counts == StoreCounts(users: 51, chats: 1, members: 51, messages: 250))
        }
    }

    /// Closing the store (as a server does when its shutdown grace runs out) while reads and
    /// writes are under way: each of them ends normally or with `storage_unavailable`, never
    /// with an error from a closed connection.
    @Test func closingDuringTrafficEndsEveryCallCleanly() async throws {
        try await TestDatabase.sqlite.withStore { store in
            let sqlite = try #require(store as? SQLiteChatStore)
            let owner = try await store.createUser(NewUser(name: "owner", email: "o@example.com", passwordHash: "h"))
            let chat = try await store.createChat(name: "busy", type: .group, creator: owner.id)
            let outcomes = try await withThrowingTaskGroup(of: [String].self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var outcomes: [String] = []
                        for index in 0..<200 {
                            do {
                                if worker.isMultiple(of: 2) {
                                    _ = try await store.chatSummaries(for: owner.id)
                                } else {
                                    _ = try await store.appendMessage(
                                        NewMessage(chatID: chat.id, senderID: owner.id, clientID: nil, text: "\(index)")
                                    )
                                }
                                outcomes.append("ok")
                            } catch ChatError.storageUnavailable {
                                outcomes.append("unavailable")
                            } catch {
                                outcomes.append("\(error)")
                            }
                        }
                        return outcomes
                    }
                }
                // Close once some calls went through, while the rest are still coming.
                group.addTask {
                    while try await store.counts().messages < 20 { await Task.yield() }
                    await sqlite.close()
                    return []
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(outcomes.contains("ok") && outcomes.contains("unavailable"))
            #expect(outcomes.allSatisfy { $0 == "ok" || $0 == "unavailable" }, "\(Set(outcomes))")
        }
    }

    /// Under steady concurrent reads a reader connection must not stay on an old snapshot:
    /// every user is found right after being created (as a log-in right after registering).
    @Test func readsSeeEveryEarlierCommitUnderConcurrentLoad() async throws {
        try await TestDatabase.sqlite.withStore { store in
            for index in 0..<500 {
                _ = try await store.createUser(
                    NewUser(name: "bulk\(index)", email: "b\(index)@example.com", passwordHash: "h"))
            }
            let missing = try await withThrowingTaskGroup(of: Int.self) { group in
                // Readers that keep both reader connections busy with overlapping statements.
                for _ in 0..<8 {
                    group.addTask {
                        while !Task.isCancelled { _ = try await store.users(nameKeyPrefix: "bulk", limit: 500) }
                        return 0
                    }
                }
                let workers = (0..<8).map { worker in
                    Task {
                        var missing = 0
                        for index in 0..<50 {
                            let name = "u\(worker)-\(index)"
                            _ = try await store.createUser(
                                NewUser(name: name, email: "\(name)@example.com", passwordHash: "h"))
                            if try await store.credentials(loginKey: User.key(for: name)) == nil { missing += 1 }
                        }
                        return missing
                    }
                }
                var missing = 0
                for worker in workers { missing += try await worker.value }
                group.cancelAll()
                return missing
            }
            #expect(missing == 0)
        }
    }

    @Test func reopeningADatabaseKeepsItsData() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            guard case .sqlite(let path) = location else { return }
            let first = try await SQLiteChatStore.open(path: path, logger: .init(label: "test"))
            try await first.migrateUp()
            _ = try await first.createUser(NewUser(name: "kept", email: "kept@example.com", passwordHash: "h"))
            await first.close()
            let second = try await SQLiteChatStore.open(path: path, logger: .init(label: "test"))
            let found = try await second.credentials(loginKey: "kept")
            await second.close()
            #expect(found?.user.name == "kept")
        }
    }
}
