import ChatServer
import Hummingbird
import HummingbirdTesting
import Logging

/// Builds the real application on a fresh test database and runs a test against it.
public enum TestApp {
    /// The configuration tests run with: the `test` environment, a fixed secret, and the
    /// cheapest bcrypt cost so that registering users is fast.
    public static func config(
        database: DatabaseLocation, overrides: [String: String] = [:]
    ) async throws -> ChatConfig {
        var environment = [
            "CHAT_ENV": "test",
            "CHAT_JWT_SECRET": "test-secret-that-is-long-enough-for-hs256-signing",
            "CHAT_BCRYPT_COST": "4",
            "CHAT_PBKDF2_ITERATIONS": "1000",
        ]
        environment.merge(overrides) { _, override in override }
        var config = try await ChatConfig.load(environment: environment, directory: "/nonexistent")
        config.database = database
        config.port = 0
        return config
    }

    /// Runs `test` with a client of the application built on a fresh `database`.
    /// - Parameters:
    ///   - testing: `.router` calls the router directly; `.live` serves on a free loopback port.
    ///   - overrides: environment variables to change from ``config(database:overrides:)``.
    ///   - logger: what the server logs to (warnings and worse, to standard error, by default).
    ///   - wrapStore: what the application gets instead of the store, e.g. a ``FaultInjectingStore``.
    public static func run<T: Sendable>(
        on database: TestDatabase = .sqlite,
        testing: TestingSetup = .router,
        overrides: [String: String] = [:],
        logger: Logger = TestDatabase.logger,
        wrapStore: @Sendable (any ChatStore) -> any ChatStore = { $0 },
        _ test: @Sendable (APITestClient) async throws -> T
    ) async throws -> T {
        try await database.withLocation { location in
            let config = try await config(database: location, overrides: overrides)
            let telemetry = Telemetry()
            let store = wrapStore(
                try await makeStore(for: location, poolSize: 20, metrics: telemetry.metrics, logger: logger))
            let app = try await buildApplication(
                config: config, store: store, telemetry: telemetry, options: StartupOptions(migrate: true),
                logger: logger)
            return try await app.test(testing) { client in
                try await test(APITestClient(client: client, store: store, database: location))
            }
        }
    }
}
