import ArgumentParser
import ChatProtocol
import Logging

/// `chat-server`: the server and its admin subcommands. `serve` is the default.
public struct ChatServerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "chat-server",
        abstract: "A real-time chat server: REST API and WebSocket, on PostgreSQL or an embedded SQLite database.",
        discussion: "Settings come from environment variables and <CHAT_ENV>.env; see the README.",
        version: ProjectVersion.current,
        subcommands: [
            ServeCommand.self, MigrateCommand.self, SeedCommand.self, AdminCommand.self, DatabaseCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )

    public init() {}
}

/// The logger every command uses, in the configured format and level.
func makeLogger(_ config: ChatConfig) -> Logger {
    Logger(label: "chat-server") { label in
        ChatLogHandler(label: label, format: config.logFormat, level: config.logLevel)
    }
}

/// Loads the configuration and runs `body` with the configured store open.
func withConfiguredStore<T: Sendable>(
    _ body: @Sendable (ChatConfig, any ChatStore, Logger) async throws -> T
) async throws -> T {
    let config = try await ChatConfig.load()
    let logger = makeLogger(config)
    let store = try await makeStore(for: config.database, poolSize: 2, logger: logger)
    return try await withRunningStore(store) { store in
        try await store.checkConnection()
        return try await body(config, store, logger)
    }
}
