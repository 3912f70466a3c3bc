import Synchronization

/// The database generation this node serves (``ChatStore/databaseGeneration()``), read once
/// when the database is prepared: a restore happens with every node stopped, and each node
/// reads the new generation when it starts again.
public final class DatabaseGeneration: Sendable {
    private let value = Mutex("")

    public init() {}

    /// Empty until the database is prepared; no WebSocket is accepted before then.
    public var current: String { value.withLock { $0 } }

    func load(from store: any ChatStore) async throws {
        let generation = try await store.databaseGeneration()
        value.withLock { $0 = generation }
    }
}
