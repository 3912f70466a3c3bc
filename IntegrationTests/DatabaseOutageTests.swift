import ChatProtocol
import ChatServer
import ChatTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite("Database outages", .timeLimit(.minutes(5)))
struct DatabaseOutageTests {
    /// A PostgreSQL location nothing listens on.
    static func unreachable() async throws -> PostgresLocation {
        PostgresLocation(
            host: "127.0.0.1", port: try await FreePort.find(), username: "chat", password: nil, database: "chat",
            tls: .disable)
    }

    @Test func requestsFailFastWith503WhenNoConnectionCanBeHad() async throws {
        let location = try await Self.unreachable()
        let store = try PostgresChatStore(
            location: location, maxConnections: 2,
            waitLimits: .init(connection: .milliseconds(300), work: .seconds(15)), logger: Logger(label: "test"))
        let config = try await TestApp.config(database: .postgres(location))
        let components = try await ChatComponents(
            config: config, store: store, telemetry: Telemetry(), logger: Logger(label: "test"))
        let app = Application(router: buildRouter(components), services: [store])
        try await app.test(.router) { client in
            let api = APITestClient(client: client, store: store, database: .postgres(location))
            let response = try await api.send(
                .post, "/user",
                json: CreateUserRequest(name: "alice", email: "alice@example.com", password: "password123"))
            #expect(response.status == .serviceUnavailable)
            #expect(response.error?.code == "storage_unavailable")
            #expect(response.headers[.retryAfter] == "1")
            #expect(!response.bodyText.contains("127.0.0.1") && !response.bodyText.contains("connect"))
        }
    }

    @Test func theConnectionCheckSaysWhatIsWrong() async throws {
        let store = try PostgresChatStore(
            location: try await Self.unreachable(), maxConnections: 1, logger: Logger(label: "test"))
        let error = await #expect(throws: StorageError.self) { try await store.checkConnection() }
        #expect(error?.description.contains("cannot reach the database: PostgreSQL at 127.0.0.1") == true)
    }
}
