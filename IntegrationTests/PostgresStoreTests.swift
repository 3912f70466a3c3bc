import ChatConformance
import ChatProtocol
import ChatTestSupport
import Logging
import Testing

@testable import ChatServer

@Suite("PostgreSQL store")
struct PostgresStoreTests {
    @Test("honors the store contract", arguments: StoreContract.checks)
    func honorsContract(_ check: StoreContractCheck) async throws {
        try await TestDatabase.postgres.withStore { store in try await check.run(store) }
    }

    /// A request that writes cannot take its session check's position as the bound of what
    /// it reads next: it may read what it wrote (docs/operations.md, "Read replicas").
    @Test func aWriteEndsTheRequestsReplicaShortcut() async throws {
        try await TestDatabase.postgres.withStore { store in
            let scope = ReadScope()
            scope.notePrimaryPosition(42)
            #expect(scope.primaryPosition == 42)
            try await ReadScope.$current.withValue(scope) {
                _ = try await store.createUser(NewUser(name: "writer", email: "w@example.com", passwordHash: "h"))
            }
            #expect(scope.primaryPosition == nil)
            scope.notePrimaryPosition(43)
            #expect(scope.primaryPosition == nil, "a later session check does not bring it back")
        }
    }

    @Test func nodesStartingTogetherApplyEachMigrationOnce() async throws {
        try await TestDatabase.postgres.withLocation { location in
            guard case .postgres(let postgres) = location else { return }
            let nodes = try (0..<4).map { _ in
                try PostgresChatStore(
                    location: postgres, maxConnections: 2, waitLimits: Patience.postgres, logger: Logger(label: "test"))
            }
            let applied = try await withThrowingTaskGroup(of: Int.self) { group in
                for node in nodes {
                    group.addTask { try await withRunningStore(node) { try await $0.migrateUp().count } }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let migrationCount = try SQLDialect.postgres.migrations().count
            #expect(applied.sorted() == [0, 0, 0, migrationCount], "one node applied everything, the others nothing")
        }
    }

    @Test func aDatabaseMigratedByANewerBuildStopsStartUp() async throws {
        try await TestDatabase.postgres.withLocation { location in
            guard case .postgres(let postgres) = location else { return }
            let store = try PostgresChatStore(
                location: postgres, maxConnections: 2, waitLimits: Patience.postgres, logger: Logger(label: "test"))
            try await withRunningStore(store) { store in
                try await store.migrateUp()
                try await TestPostgres.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')",
                    on: postgres)
                await #expect(throws: MigrationError.unknownVersionApplied(version: 9999, name: "from_the_future")) {
                    try await store.migrateUp()
                }
            }
        }
    }

    @Test func startUpChecksTheListenURLToo() async throws {
        try await TestDatabase.postgres.withLocation { location in
            guard case .postgres(let postgres) = location else { return }
            var unreachable = postgres
            unreachable.port = try await FreePort.find()
            let store = try PostgresChatStore(
                location: postgres, listenLocation: unreachable, maxConnections: 1, waitLimits: Patience.postgres,
                logger: Logger(label: "test"))
            let error = await #expect(throws: StorageError.self) { try await store.checkConnection() }
            #expect(error?.description.contains(":\(unreachable.port)") == true, "the error names the LISTEN server")
        }
    }
}
