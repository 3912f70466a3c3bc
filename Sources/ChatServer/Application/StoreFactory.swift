import Logging
import ServiceLifecycle

/// Opens the store that `location` names.
/// - Parameters:
///   - listenLocation, replicas: see ``PostgresChatStore/init(location:listenLocation:replicas:maxConnections:nodeName:waitLimits:metrics:logger:)``.
///   - nodeName: how this node names itself to PostgreSQL (see ``ClusterLink``).
///   - waitLimits: how long a request waits on PostgreSQL before it fails.
public func makeStore(
    for location: DatabaseLocation, listenLocation: PostgresLocation? = nil,
    replicas: (locations: [PostgresLocation], maxLag: Duration) = ([], .seconds(1)), poolSize: Int,
    nodeName: String = "chat-server",
    waitLimits: PostgresChatStore.WaitLimits = .standard, metrics: ChatMetrics = .disabled, logger: Logger
) async throws -> any ChatStore {
    switch location {
    case .sqlite(let path):
        try await SQLiteChatStore.open(path: path, metrics: metrics, logger: logger)
    case .postgres(let postgres):
        try PostgresChatStore(
            location: postgres, listenLocation: listenLocation, replicas: replicas, maxConnections: poolSize,
            nodeName: nodeName,
            waitLimits: waitLimits, metrics: metrics,
            logger: logger)
    }
}

/// Runs `body` with `store` running (its connections open), then shuts it down. For
/// one-shot work such as the admin commands and tests.
public func withRunningStore<T: Sendable>(
    _ store: any ChatStore, _ body: @Sendable (any ChatStore) async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await store.run() }
        do {
            let result = try await body(store)
            group.cancelAll()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
    }
}
