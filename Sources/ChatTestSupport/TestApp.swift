import ChatConformance
import ChatServer
import Hummingbird
import HummingbirdTesting
import Logging

/// Builds the real application on a fresh test database and runs a test against it.
public enum TestApp {
    /// The session-token secret of every test server.
    public static let jwtSecret = "test-secret-that-is-long-enough-for-hs256-signing"

    /// The configuration tests run with: the `test` environment, a fixed secret, the cheapest
    /// bcrypt cost so that registering users is fast, and bounds a slow, busy test machine
    /// cannot run into: a send wait bound of a minute, so that no test's send is refused as
    /// `overloaded`, and an hour for a request head and a keep-alive connection's idleness, so
    /// that the test client's one connection, opened when the server starts, is never closed
    /// under a test that takes long to send its first request or its next one. (Tests of
    /// these limits set them themselves.)
    public static func config(
        database: DatabaseLocation, overrides: [String: String] = [:]
    ) async throws -> ChatConfig {
        var environment = [
            "CHAT_ENV": "test",
            "CHAT_JWT_SECRET": jwtSecret,
            "CHAT_BCRYPT_COST": "4",
            "CHAT_PBKDF2_ITERATIONS": "1000",
            "CHAT_SEND_MAX_WAIT_MS": "60000",
            "CHAT_REQUEST_HEAD_TIMEOUT_SECONDS": "3600",
            "CHAT_IDLE_TIMEOUT_SECONDS": "3600",
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
    ///   - clock: what the real-time core waits on and reads the time from, e.g. a ``ManualClock``.
    public static func run<T: Sendable>(
        on database: TestDatabase = .sqlite,
        testing: TestingSetup = .router,
        overrides: [String: String] = [:],
        logger: Logger = TestDatabase.logger,
        wrapStore: @Sendable (any ChatStore) -> any ChatStore = { $0 },
        clock: any Clock<Duration> = ContinuousClock(),
        _ test: @Sendable (APITestClient) async throws -> T
    ) async throws -> T {
        try await database.withLocation { location in
            try await run(
                at: location, testing: testing, overrides: overrides, logger: logger, wrapStore: wrapStore,
                clock: clock, test)
        }
    }

    /// Runs `test` with a client of the application built on the database at `location`, which
    /// outlives it: a test can serve one database twice, with something done to it between.
    public static func run<T: Sendable>(
        at location: DatabaseLocation,
        testing: TestingSetup = .router,
        overrides: [String: String] = [:],
        logger: Logger = TestDatabase.logger,
        wrapStore: @Sendable (any ChatStore) -> any ChatStore = { $0 },
        clock: any Clock<Duration> = ContinuousClock(),
        _ test: @Sendable (APITestClient) async throws -> T
    ) async throws -> T {
        let (app, store) = try await makeApp(
            on: location, overrides: overrides, logger: logger, wrapStore: wrapStore, clock: clock)
        return try await app.test(testing) { client in
            try await test(APITestClient(client: client, store: store, database: location))
        }
    }

    /// Runs `test` against `count` nodes serving one fresh PostgreSQL database, each with its
    /// own store, hub and cluster link, on its own loopback port, once every node is ready
    /// (it hears the others). Nodes are named `node-1`, `node-2`, ..., and beat at the default
    /// interval: a shorter one lets a loaded machine miss a heartbeat, which makes a node's
    /// users go offline and come back. Tests of the heartbeat itself set a shorter one.
    /// - Parameters:
    ///   - nodeOverrides: environment variables for one node, by its index from 0, over
    ///     `overrides`.
    ///   - waitUntilReady: false for tests of nodes that must not become ready.
    ///   - test: gets a client of each node, the first node's first.
    public static func runNodes<T: Sendable>(
        _ count: Int, overrides: [String: String] = [:], nodeOverrides: [Int: [String: String]] = [:],
        waitUntilReady: Bool = true, logger: Logger = TestDatabase.logger,
        _ test: @Sendable ([APITestClient]) async throws -> T
    ) async throws -> T {
        try await TestDatabase.postgres.withLocation { location in
            try await startNodes(
                count, on: location, overrides: overrides, nodeOverrides: nodeOverrides, waitUntilReady: waitUntilReady,
                logger: logger, started: [], test)
        }
    }

    private static func startNodes<T: Sendable>(
        _ remaining: Int, on location: DatabaseLocation, overrides: [String: String],
        nodeOverrides: [Int: [String: String]], waitUntilReady: Bool, logger: Logger, started: [APITestClient],
        _ test: @Sendable ([APITestClient]) async throws -> T
    ) async throws -> T {
        guard remaining > 0 else {
            if waitUntilReady {
                for node in started { try await node.waitUntilReady() }
            }
            return try await test(started)
        }
        let node = ["CHAT_NODE_NAME": "node-\(started.count + 1)"]
            .merging(overrides) { _, override in override }
            .merging(nodeOverrides[started.count] ?? [:]) { _, override in override }
        // Small pools: parallel tests with several nodes each share one PostgreSQL server.
        let (app, store) = try await makeApp(on: location, poolSize: 6, overrides: node, logger: logger)
        return try await app.test(.live) { client in
            try await startNodes(
                remaining - 1, on: location, overrides: overrides, nodeOverrides: nodeOverrides,
                waitUntilReady: waitUntilReady, logger: logger,
                started: started + [APITestClient(client: client, store: store, database: location)], test)
        }
    }

    private static func makeApp(
        on location: DatabaseLocation, poolSize: Int = 20, overrides: [String: String], logger: Logger,
        wrapStore: @Sendable (any ChatStore) -> any ChatStore = { $0 }, clock: any Clock<Duration> = ContinuousClock()
    ) async throws -> (some ApplicationProtocol, any ChatStore) {
        let config = try await config(database: location, overrides: overrides)
        let telemetry = Telemetry()
        let store = wrapStore(
            try await makeStore(
                for: location, listenLocation: config.listenDatabase,
                replicas: (config.replicaDatabases, config.replicaMaxLag), poolSize: poolSize,
                nodeName: config.cluster.nodeName, waitLimits: Patience.postgres, metrics: telemetry.metrics,
                logger: logger))
        let app = try await buildApplication(
            config: config, store: store, telemetry: telemetry, options: StartupOptions(migrate: true), clock: clock,
            logger: logger)
        return (app, store)
    }
}
