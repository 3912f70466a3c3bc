import ArgumentParser
import Foundation

/// `chat-server database backup|restore|new-generation`: backups of the embedded SQLite
/// database, and the step every restore ends with (docs/operations.md, "Backups").
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "database", abstract: "Back up and restore the database.",
        subcommands: [Backup.self, Restore.self, NewGeneration.self])

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a consistent copy of the SQLite database to a new file, while the server runs.")

        @Argument(help: "The backup file to create.")
        var file: String

        func run() async throws {
            let file = file
            guard !FileManager.default.fileExists(atPath: file) else {
                throw ValidationError("\(file) exists already: name a new file.")
            }
            try await withConfiguredStore { _, store, _ in
                guard let sqlite = store as? SQLiteChatStore else { throw ValidationError(Self.onPostgres) }
                try await sqlite.backup(to: file)
            }
            print("Wrote a backup of the database to \(file).")
        }

        static let onPostgres =
            "On PostgreSQL, back up with pg_dump or continuous archiving (docs/operations.md, \"Backups\")."
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the SQLite database with a backup, with the server stopped.",
            discussion: "Also applies this build's migrations and gives the database a new generation.")

        @Argument(help: "A backup written by `chat-server database backup`.")
        var file: String

        func run() async throws {
            let config = try await ChatConfig.load()
            guard case .sqlite(let path) = config.database else {
                throw ValidationError(
                    "On PostgreSQL, restore with pg_restore or your archiving tool, then run "
                        + "`chat-server database new-generation` (docs/operations.md, \"Backups\").")
            }
            // Refused while a server runs on the database: it would go on from what it had.
            try SQLiteServeLock.acquire(databasePath: path)
            let generation = try await SQLiteRestore.restore(path, from: file, logger: makeLogger(config))
            print("Restored \(path) from \(file); its new generation is \(generation).")
        }
    }

    struct NewGeneration: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new-generation",
            abstract: "After restoring a PostgreSQL backup: make clients drop their positions.",
            discussion:
                "Run it with every server stopped, then start them: their `ready` frames carry the new "
                + "generation, and clients read their chats again.")

        func run() async throws {
            let generation = try await withConfiguredStore { _, store, _ in try await store.renewDatabaseGeneration() }
            print("The database's generation is now \(generation).")
        }
    }
}
