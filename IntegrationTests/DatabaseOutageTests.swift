import ChatProtocol
import ChatTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import ChatServer

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

    /// PostgresNIO 1.33.2 never ends a query sent on a connection the database has closed
    /// (docs/reliability.md): the call gives up with `storage_unavailable` once its connection
    /// is closed, not at the work limit. That limit is an hour here, so without the check the
    /// test runs into its time limit.
    @Test(.timeLimit(.minutes(1))) func aCallWhoseConnectionTheDatabaseClosedGivesUp() async throws {
        try await TestDatabase.postgres.withLocation { database in
            guard case .postgres(let location) = database else { return }
            let store = try PostgresChatStore(
                location: location, maxConnections: 2,
                waitLimits: .init(connection: .seconds(30), work: .seconds(3600)), logger: TestDatabase.logger)
            try await withRunningStore(store) { _ in
                await #expect(throws: ChatError.storageUnavailable) {
                    try await store.withConnection { connection in
                        let backend = try await Self.backend(of: connection)
                        try await TestPostgres.execute("SELECT pg_terminate_backend(\(backend))", on: location)
                        while !connection.isClosed { try await Task.sleep(for: .milliseconds(10)) }
                        let never: PostgresRowSequence = try await connection.query(
                            "SELECT 1", logger: TestDatabase.logger)
                        _ = try await never.collect()
                    }
                }
            }
        }
    }

    /// A query the database does not answer within the work limit gives up with
    /// `storage_unavailable` and ends its connection, not only the caller's wait: with a pool
    /// of one, the next call gets a new connection (another backend). The test waits for the
    /// close before the next call: PostgresNIO 1.33.2's pool makes no new connection for a
    /// request that was already waiting when a connection closed (docs/reliability.md).
    @Test(.timeLimit(.minutes(1))) func aCallPastTheWorkLimitEndsItsConnection() async throws {
        try await TestDatabase.postgres.withLocation { database in
            guard case .postgres(let location) = database else { return }
            // A work limit of 5 s, not less: the call reads its backend's pid first, also on a
            // machine loaded by the whole suite and busy loops.
            let store = try PostgresChatStore(
                location: location, maxConnections: 1,
                waitLimits: .init(connection: .seconds(30), work: .seconds(5)), logger: TestDatabase.logger)
            try await withRunningStore(store) { _ in
                let hung = Mutex<(connection: PostgresConnection, backend: Int32)?>(nil)
                await #expect(throws: ChatError.storageUnavailable) {
                    try await store.withConnection { connection in
                        let backend = try await Self.backend(of: connection)
                        hung.withLock { $0 = (connection, backend) }
                        _ = try await connection.query("SELECT pg_sleep(60)", logger: TestDatabase.logger).collect()
                    }
                }
                let (connection, backend) = try #require(hung.withLock { $0 })
                try await connection.closeFuture.get()
                let next = try await store.withConnection { connection in try await Self.backend(of: connection) }
                #expect(next != backend)
            }
        }
    }

    /// The process id of the PostgreSQL backend serving `connection`.
    static func backend(of connection: PostgresConnection) async throws -> Int32 {
        let rows = try await connection.query("SELECT pg_backend_pid()", logger: TestDatabase.logger)
        for try await pid in rows.decode(Int32.self) { return pid }
        throw StorageError.unexpected("no backend pid")
    }

    @Test func theConnectionCheckSaysWhatIsWrong() async throws {
        let store = try PostgresChatStore(
            location: try await Self.unreachable(), maxConnections: 1, logger: Logger(label: "test"))
        let error = await #expect(throws: StorageError.self) { try await store.checkConnection() }
        #expect(error?.description.contains("cannot reach the database: PostgreSQL at 127.0.0.1") == true)
    }
}
