import ArgumentParser
import ChatProtocol
import ChatTestSupport
import HummingbirdTesting
import Testing

@testable import ChatServer

@Suite("Administration and demo data")
struct AdminAndSeedTests {
    @Test func syncIsForAdminsOnly() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let forbidden = try await api.send(.get, "/chat/sync/persistent", as: alice)
            #expect(forbidden.status == .forbidden && forbidden.error?.code == "admin_only")
            _ = try await api.store.setAdmin(true, nameKey: "alice")
            let chat = try await api.createChat("Team", as: alice)
            try await api.storeMessages(3, in: chat.id, from: alice.id)
            let report = try await api.send(.get, "/chat/sync/persistent", as: alice)
                .decode(SyncReportPayload.self, expecting: .ok)
            #expect(
                report
                    == SyncReportPayload(users: 1, chats: 1, members: 1, messages: 3, liveUsers: 0, liveConnections: 0))
            #expect(try await api.send(.get, "/chat/sync/persistent").status == .unauthorized)
        }
    }

    @Test func demoDataLoadsOnceAndLogsIn() async throws {
        try await TestDatabase.sqlite.withStore { store in
            let hasher = PasswordHasher(algorithm: .bcrypt, bcryptCost: 4, pbkdf2Iterations: 1000)
            let seeder = DemoSeeder(store: store, hasher: hasher, rules: InputRules())
            try await seeder.seed()
            let first = try await store.counts()
            try await seeder.seed()
            #expect(try await store.counts() == first, "seeding again changes nothing")
            #expect(first == StoreCounts(users: 3, chats: 2, members: 5, messages: 5))
            for name in DemoSeeder.userNames {
                let credentials = try #require(try await store.credentials(loginKey: User.key(for: name)))
                #expect(try await hasher.verify("12345", against: credentials.passwordHash), "\(name)")
            }
            let sergey = try #require(try await store.credentials(loginKey: "sergey")).user
            let chats = try await store.chatSummaries(for: sergey.id)
            #expect(Set(chats.map(\.chat.type)) == [.group, .private])
        }
    }

    @Test func theCommandLineParsesAsDocumented() throws {
        #expect(try ChatServerCommand.parseAsRoot([]) is ServeCommand)
        let serve = try #require(
            try ChatServerCommand.parseAsRoot(["serve", "--hostname", "0.0.0.0", "--port", "9000", "--no-migrate"])
                as? ServeCommand)
        #expect(serve.hostname == "0.0.0.0" && serve.port == 9000 && serve.noMigrate)
        let down = try #require(
            try ChatServerCommand.parseAsRoot(["migrate", "down", "--steps", "2"]) as? MigrateCommand.Down)
        #expect(down.steps == 2)
        #expect(try ChatServerCommand.parseAsRoot(["migrate", "up"]) is MigrateCommand.Up)
        #expect(try ChatServerCommand.parseAsRoot(["migrate", "status"]) is MigrateCommand.Status)
        #expect(try ChatServerCommand.parseAsRoot(["seed"]) is SeedCommand)
        #expect(
            (try ChatServerCommand.parseAsRoot(["admin", "grant", "Sergey"]) as? AdminCommand.Grant)?.name == "Sergey")
        #expect(
            (try ChatServerCommand.parseAsRoot(["admin", "revoke", "Vlad"]) as? AdminCommand.Revoke)?.name == "Vlad")
        #expect(throws: (any Error).self) { try ChatServerCommand.parseAsRoot(["migrate", "down", "--steps", "0"]) }
    }
}
