import ChatConformance
import ChatProtocol
import ChatServer
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOWebSocket
import Synchronization
import WSClient

/// What a real-time check runs against: the REST API of a live server, and the ports of the
/// nodes serving it for opening real WebSocket connections.
public final class RealtimeFixture: Sendable {
    public let api: APITestClient
    /// One port per node; REST calls go to the first.
    public let ports: [Int]
    private let connections = Mutex(0)

    public init(api: APITestClient, ports: [Int]) {
        self.api = api
        self.ports = ports
    }

    /// Opens a WebSocket connection as `user` and waits for `ready`: on `node` when given,
    /// otherwise on the nodes in turn.
    public func connect(_ user: TestUser, query: String = "", node: Int? = nil) async throws -> ChatWebSocketClient {
        let index =
            node
            ?? connections.withLock { count in
                defer { count += 1 }
                return count % ports.count
            }
        return try await ChatWebSocketClient.connect(port: ports[index], token: user.token, query: query)
    }
}

/// A named real-time scenario with real WebSocket clients.
public struct RealtimeCheck: Sendable, CustomStringConvertible {
    public let description: String
    public let run: @Sendable (RealtimeFixture) async throws -> Void
}

/// The real-time checks that need the server's store, which only an in-process run has: the
/// unit tests run them on SQLite, the integration tests on PostgreSQL with one node and with two
/// (where consecutive connections go to different nodes). Every other real-time guarantee is a
/// conformance check (`ConformanceSuite`, ChatConformance), run in process and by `chatsim verify`.
public enum RealtimeContract {
    public static let checks: [RealtimeCheck] = [
        RealtimeCheck(
            description: "a retried send whose first answer was lost reaches every member", run: lostAnswers),
        RealtimeCheck(description: "admin sync re-follows membership changed behind the hub", run: adminSync),
    ]

    /// The first attempt was stored, but the database failed before the server learned it
    /// (so nobody was told): the retry must bring the message to the other members too.
    static func lostAnswers(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let aliceSocket = try await fixture.connect(alice)
        let bobSocket = try await fixture.connect(bob)
        _ = try await api.store.appendMessages([
            NewMessage(chatID: chat.id, senderID: alice.id, clientID: "lost", text: "stored unannounced")
        ])
        aliceSocket.send(.send(chatID: chat.id, clientID: "lost", text: "stored unannounced"))
        let retry = try await aliceSocket.ack()
        try await require(retry.duplicate && retry.message.seq == 1, "the retry is acknowledged as the stored message")
        // No later message comes to reveal a gap: the retry itself must deliver it.
        let first = try await bobSocket.deliveries(1, in: chat.id)
        try await require(first.map(\.clientID) == ["lost"], "the other member got it")
        aliceSocket.send(.send(chatID: chat.id, clientID: "lost", text: "stored unannounced"))
        aliceSocket.send(.send(chatID: chat.id, clientID: "next", text: "next"))
        try await require(try await aliceSocket.ack().duplicate, "a second retry is a duplicate too")
        try await require(try await aliceSocket.ack().message.seq == 2, "then the next one")
        let second = try await bobSocket.deliveries(1, in: chat.id)
        try await require(second.map(\.clientID) == ["next"], "and nothing is delivered twice")
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func adminSync(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
        _ = try await api.store.setAdmin(true, nameKey: "alice")
        let chat = try await api.createChat("Elsewhere", as: bob)
        let aliceSocket = try await fixture.connect(alice)
        let bobSocket = try await fixture.connect(bob)
        // Changed in the database only: the hub cannot know until it is told to resync.
        try await api.store.addMember(alice.id, to: chat.id)
        let report = try await api.send(.get, "/chat/sync/persistent", as: alice)
            .decode(SyncReportPayload.self, expecting: .ok)
        let live: Int64 = fixture.ports.count == 1 ? 2 : 1
        try await require(
            report.liveUsers == live && report.liveConnections == live, "the report counts this node's connections")
        guard case .memberAdded(let chatID, _, _?) = try await aliceSocket.next(.memberAdded), chatID == chat.id else {
            throw ContractFailure(description: "alice was not subscribed by the sync")
        }
        bobSocket.send(.send(chatID: chat.id, clientID: "b1", text: "hi"))
        try await require(try await aliceSocket.deliveries(1, in: chat.id).map(\.seq) == [1], "alice receives")
        try await api.store.removeMember(alice.id, from: chat.id)
        _ = try await api.send(.get, "/chat/sync/persistent", as: alice)
        try await require(
            try await aliceSocket.next(.memberRemoved) == .memberRemoved(chatID: chat.id, userID: alice.id),
            "alice was unsubscribed by the sync")
        await aliceSocket.close()
        await bobSocket.close()
    }

    // MARK: Helpers

    /// Users alice and bob and their private chat.
    public static func pair(_ api: APITestClient) async throws -> (alice: TestUser, bob: TestUser, chat: ChatPayload) {
        let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
        let chat = try await api.createChat("Pair", type: .private, as: alice)
        _ = try await api.addUser(bob.id, to: chat.id, as: alice)
        return (alice, bob, chat)
    }
}
