import ChatConformance
import ChatServer
import Foundation
import Logging

/// Which database a test runs on.
public enum TestDatabase: String, Sendable, CaseIterable, CustomStringConvertible {
    /// A SQLite file in a fresh temporary directory.
    case sqlite
    /// A fresh database on ``TestPostgres/shared``.
    case postgres

    public var description: String { rawValue }

    /// Creates an empty database, migrated unless `migrated` is false, and runs `body` with a
    /// running store on it; removes the database afterwards.
    public func withStore<T: Sendable>(
        migrated: Bool = true, _ body: @Sendable (any ChatStore) async throws -> T
    ) async throws -> T {
        try await withLocation { location in
            let store = try await makeStore(
                for: location, poolSize: 20, waitLimits: Patience.postgres, logger: Self.logger)
            return try await withRunningStore(store) { store in
                if migrated { try await store.migrateUp() }
                return try await body(store)
            }
        }
    }

    /// Creates an empty database and runs `body` with its location; removes it afterwards.
    public func withLocation<T: Sendable>(_ body: @Sendable (DatabaseLocation) async throws -> T) async throws -> T {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("chat-test-sqlite-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            return try await body(.sqlite(path: directory.appendingPathComponent("chat.sqlite").path))
        case .postgres:
            let location = try await TestPostgres.shared.makeDatabase()
            do {
                let result = try await body(.postgres(location))
                try await TestPostgres.shared.dropDatabase(location)
                return result
            } catch {
                try? await TestPostgres.shared.dropDatabase(location)
                throw error
            }
        }
    }

    /// Tests log only warnings and worse, to keep their output readable.
    public static var logger: Logger {
        var logger = Logger(label: "chat-test")
        logger.logLevel = .warning
        return logger
    }
}
