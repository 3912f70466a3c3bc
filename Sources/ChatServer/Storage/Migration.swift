import Crypto
import Foundation

/// One numbered schema change with its `up` and `down` SQL, as found in `migrations/<dialect>/`
/// (`0001_initial_schema.up.sql` and `0001_initial_schema.down.sql`), embedded in the binary.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let upSQL: String
    public let downSQL: String

    /// SHA-256 of the `up` SQL, recorded when applied: a shipped migration that was edited
    /// afterwards stops start-up instead of leaving databases that differ silently.
    public var checksum: String {
        SHA256.hash(data: Data(upSQL.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The SQL split into statements. A statement ends with `;` at the end of a line, outside
    /// a `$$`-quoted body; lines starting with `--` are comments (see migrations/README.md).
    static func statements(in sql: String) -> [String] {
        var statements: [String] = []
        var current: [Substring] = []
        var inDollarQuotes = false
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if !inDollarQuotes && (trimmed.hasPrefix("--") || (trimmed.isEmpty && current.isEmpty)) { continue }
            current.append(line)
            if line.components(separatedBy: "$$").count % 2 == 0 { inDollarQuotes.toggle() }
            if !inDollarQuotes && trimmed.hasSuffix(";") {
                statements.append(current.joined(separator: "\n"))
                current = []
            }
        }
        let rest = current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty { statements.append(rest) }
        return statements
    }
}

/// Which SQL dialect a set of migrations is written in.
public enum SQLDialect: String, Sendable {
    case postgres
    case sqlite

    /// The dialect's migrations from the embedded `migrations/<dialect>/` folder, by version.
    public func migrations() throws -> [Migration] {
        try Self.load(files: EmbeddedResources.base64Files, folder: "migrations/\(rawValue)/")
    }

    /// Groups `NNNN_name.up.sql` / `NNNN_name.down.sql` pairs; each version needs both parts.
    static func load(files: [String: String], folder: String) throws -> [Migration] {
        var parts: [Int: (name: String, up: String?, down: String?)] = [:]
        for (path, base64) in files where path.hasPrefix(folder) && path.hasSuffix(".sql") {
            let fileName = String(path.dropFirst(folder.count).dropLast(".sql".count))
            let direction = fileName.hasSuffix(".up") ? "up" : fileName.hasSuffix(".down") ? "down" : nil
            let stem = fileName.split(separator: ".").first.map(String.init) ?? ""
            guard let direction, let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]),
                let data = Data(base64Encoded: base64), let sql = String(data: data, encoding: .utf8)
            else { throw MigrationError.badFileName(path) }
            let name = String(stem[stem.index(after: underscore)...])
            var entry = parts[version] ?? (name, nil, nil)
            guard entry.name == name else { throw MigrationError.badFileName(path) }
            if direction == "up" { entry.up = sql } else { entry.down = sql }
            parts[version] = entry
        }
        return try parts.sorted { $0.key < $1.key }.map { version, entry in
            guard let up = entry.up, let down = entry.down else {
                throw MigrationError.incomplete(version: version, name: entry.name)
            }
            return Migration(version: version, name: entry.name, upSQL: up, downSQL: down)
        }
    }
}

/// A migration as recorded in a database's `schema_migrations` table.
public struct AppliedMigration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let checksum: String
    public let appliedAt: Date
}

/// One line of `chat-server migrate status`.
public struct MigrationStatus: Sendable, Equatable {
    public let migration: Migration
    /// When it was applied, or nil while pending.
    public let appliedAt: Date?
}

/// Why migrations cannot run. Each message says what to do.
public enum MigrationError: Error, CustomStringConvertible, Equatable {
    case badFileName(String)
    case incomplete(version: Int, name: String)
    case unknownVersionApplied(version: Int, name: String)
    case checksumMismatch(version: Int, name: String)

    public var description: String {
        switch self {
        case .badFileName(let path):
            "Migration file \(path) is not named NNNN_name.up.sql or NNNN_name.down.sql."
        case .incomplete(let version, let name):
            "Migration \(version) (\(name)) needs both an .up.sql and a .down.sql file."
        case .unknownVersionApplied(let version, let name):
            "The database has migration \(version) (\(name)) applied, which this build does not know: "
                + "it was migrated by a newer chat-server. Run that version, or migrate down with it first."
        case .checksumMismatch(let version, let name):
            "Migration \(version) (\(name)) differs from the one applied to the database. "
                + "Shipped migrations must never be edited: restore it and add a new migration instead."
        }
    }
}

extension Array where Element == Migration {
    /// Checks that the database's history is a prefix of this build's migrations and returns
    /// the ones still to apply.
    func pending(after applied: [AppliedMigration]) throws -> [Migration] {
        let known = Dictionary(uniqueKeysWithValues: map { ($0.version, $0) })
        for record in applied {
            guard let migration = known[record.version] else {
                throw MigrationError.unknownVersionApplied(version: record.version, name: record.name)
            }
            guard migration.checksum == record.checksum else {
                throw MigrationError.checksumMismatch(version: record.version, name: record.name)
            }
        }
        let appliedVersions = Set(applied.map(\.version))
        return filter { !appliedVersions.contains($0.version) }
    }

    /// The newest `count` applied migrations, newest first, after checking the history as
    /// ``pending(after:)`` does.
    func newestApplied(_ count: Int, of applied: [AppliedMigration]) throws -> [Migration] {
        _ = try pending(after: applied)
        let byVersion = Dictionary(uniqueKeysWithValues: map { ($0.version, $0) })
        return applied.reversed().prefix(count).compactMap { byVersion[$0.version] }
    }

    /// The status of every known migration against the database's records.
    func status(applied: [AppliedMigration]) -> [MigrationStatus] {
        let appliedAt = Dictionary(uniqueKeysWithValues: applied.map { ($0.version, $0.appliedAt) })
        return map { MigrationStatus(migration: $0, appliedAt: appliedAt[$0.version]) }
    }
}
