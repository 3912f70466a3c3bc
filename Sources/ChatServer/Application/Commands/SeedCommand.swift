import ArgumentParser

/// `chat-server seed`: loads the demo users and chats (idempotent).
struct SeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "Load the demo users Sergey, Arina and Vlad (password 12345) and their chats.")

    func run() async throws {
        try await withConfiguredStore { config, store, _ in
            let pending = try await store.migrationStatus().filter { $0.appliedAt == nil }
            guard pending.isEmpty else { throw StartupError.pendingMigrations(pending.map(\.migration.version)) }
            let hasher = PasswordHasher(
                algorithm: config.passwordHashAlgorithm, bcryptCost: config.bcryptCost,
                pbkdf2Iterations: config.pbkdf2Iterations)
            try await DemoSeeder(store: store, hasher: hasher, rules: config.inputRules).seed()
        }
        print(
            "Demo data loaded: log in as \(DemoSeeder.userNames.joined(separator: ", ")) with password \(DemoSeeder.password)."
        )
    }
}
