import ChatProtocol
import ChatServer
import ChatTestSupport
import HTTPTypes
import HummingbirdTesting
import Testing

/// The REST API over real HTTP on a loopback port, backed by a disposable PostgreSQL.
@Suite("Live server on PostgreSQL", .timeLimit(.minutes(5)))
struct LiveServerTests {
    @Test func theOriginalServiceFlowWorksEndToEnd() async throws {
        try await TestApp.run(on: .postgres, testing: .live) { api in
            let sergey = try await api.user("Sergey")
            let arina = try await api.user("Arina")
            let vlad = try await api.user("Vlad")
            let group = try await api.createChat("Friends", type: .group, as: sergey)
            for member in [arina, vlad] {
                #expect(try await api.addUser(member.id, to: group.id, as: sergey).status == .ok)
            }
            try await api.storeMessages(5, in: group.id, from: arina.id)
            let history = try await api.send(.get, "/history/\(group.id)?limit=3&offset=2", as: vlad)
                .decode([MessagePayload].self, expecting: .ok)
            #expect(history.map(\.seq) == [3, 4, 5] && history.allSatisfy { $0.senderID == arina.id })

            let removed = try await api.removeUser(vlad.id, from: group.id, as: sergey)
            #expect(removed.status == .ok)
            #expect(try await api.send(.get, "/history/\(group.id)", as: vlad).status == .notFound)

            let chats = try await api.send(.get, "/chats", as: sergey).decode([ChatSummaryPayload].self, expecting: .ok)
            #expect(chats.first?.id == group.id && chats.first?.unreadCount == 5)

            #expect(try await api.send(.post, "/auth/logout", as: arina).status == .noContent)
            #expect(try await api.send(.get, "/users/me", as: arina).status == .unauthorized)
        }
    }

    @Test func concurrentAddsToAPrivateChatOverHTTPLetOnlyOneIn() async throws {
        try await TestApp.run(on: .postgres, testing: .live) { api in
            let owner = try await api.user("owner")
            var candidates: [TestUser] = []
            for index in 0..<10 { candidates.append(try await api.user("candidate\(index)")) }
            let pair = try await api.createChat("Pair", type: .private, as: owner)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for candidate in candidates {
                    group.addTask { try await api.addUser(candidate.id, to: pair.id, as: owner).status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == candidates.count - 1)
            let members = try await api.store.members(of: pair.id)
            #expect(members.count == 2)
        }
    }

    @Test func concurrentRegistrationsOfOneNameCreateOneUser() async throws {
        try await TestApp.run(on: .postgres, testing: .live) { api in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        try await api.send(
                            .post, "/user",
                            json: CreateUserRequest(
                                name: "Same", email: "same\(index)@example.com", password: "password123")
                        ).status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .created }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == 7)
        }
    }

    @Test func errorsKeepTheirShapeOverTheWire() async throws {
        try await TestApp.run(on: .postgres, testing: .live) { api in
            let alice = try await api.user("alice")
            let malformed = try await api.sendRaw(.post, "/chat", body: "{", contentType: "application/json", as: alice)
            #expect(malformed.status == .badRequest && malformed.error?.code == "invalid_json")
            let unknown = try await api.send(.get, "/no/such/route")
            #expect(unknown.status == .notFound && unknown.error?.code == "not_found")
            let hostile = try await api.send(
                .post, "/chat", json: CreateChatRequest(name: "'; DROP TABLE chats; --", chatType: .group), as: alice)
            #expect(try hostile.decode(ChatPayload.self, expecting: .created).name == "'; DROP TABLE chats; --")
        }
    }
}
