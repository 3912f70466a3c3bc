import Foundation
import Logging

/// Puts a backup made by `chat-server database backup` in place of a SQLite database, with
/// every server on it stopped.
public enum SQLiteRestore {
    /// Replaces the database at `path` with `backup`, migrates it to this build's schema and
    /// gives it a new generation, so that clients drop the positions they held.
    /// - Returns: the new generation.
    public static func restore(_ path: String, from backup: String, logger: Logger) async throws -> String {
        try replace(path, with: backup)
        let store = try await SQLiteChatStore.open(path: path, readerCount: 1, logger: logger)
        return try await withRunningStore(store) { store in
            try await store.migrateUp()
            return try await store.renewDatabaseGeneration()
        }
    }

    /// Copies `backup` over the database file, in place (the inode a serve lock is taken on
    /// stays), after removing its write-ahead log: SQLite would otherwise replay the old
    /// database's pages onto the restored one.
    static func replace(_ path: String, with backup: String) throws {
        guard let source = FileHandle(forReadingAtPath: backup) else {
            throw RestoreError("Cannot read \(backup).")
        }
        defer { try? source.close() }
        guard try source.read(upToCount: header.count) == header else {
            throw RestoreError("\(backup) is not a SQLite database.")
        }
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            try FileManager.default.removeItem(atPath: path + suffix)
        }
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let target = FileHandle(forWritingAtPath: path) else { throw RestoreError("Cannot write \(path).") }
        defer { try? target.close() }
        try target.truncate(atOffset: 0)
        try source.seek(toOffset: 0)
        while let chunk = try source.read(upToCount: 1 << 20), !chunk.isEmpty {
            try target.write(contentsOf: chunk)
        }
        try target.synchronize()
    }

    /// The first bytes of every SQLite database file.
    private static let header = Data("SQLite format 3\0".utf8)
}

/// Why a restore was refused before it touched the database.
public struct RestoreError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}
