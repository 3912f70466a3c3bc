import ArgumentParser
import Foundation

/// `chat-server migrate up|down|status`.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply, revert or list database migrations.",
        subcommands: [Up.self, Down.self, Status.self])

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply every pending migration.")

        func run() async throws {
            let applied = try await withConfiguredStore { _, store, _ in try await store.migrateUp() }
            print(
                applied.isEmpty
                    ? "Nothing to apply: the schema is up to date."
                    : applied.map { "Applied \(describe($0))" }.joined(separator: "\n"))
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revert the newest applied migrations.")

        @Option(name: .long, help: "How many migrations to revert.")
        var steps = 1

        func validate() throws {
            guard steps >= 1 else { throw ValidationError("--steps must be at least 1.") }
        }

        func run() async throws {
            let steps = steps
            let reverted = try await withConfiguredStore { _, store, _ in try await store.migrateDown(steps: steps) }
            print(
                reverted.isEmpty
                    ? "Nothing to revert." : reverted.map { "Reverted \(describe($0))" }.joined(separator: "\n"))
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List migrations and whether each is applied.")

        func run() async throws {
            let status = try await withConfiguredStore { _, store, _ in try await store.migrationStatus() }
            for entry in status {
                let state = entry.appliedAt.map { "applied \($0.formatted(.iso8601))" } ?? "pending"
                print("\(describe(entry.migration))  \(state)")
            }
        }
    }
}

private func describe(_ migration: Migration) -> String {
    String(format: "%04d %@", migration.version, migration.name)
}
