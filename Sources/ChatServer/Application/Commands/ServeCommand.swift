import ArgumentParser
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals

/// `chat-server serve`: runs the server until SIGTERM or SIGINT, then shuts down gracefully.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the server (the default command).")

    @Option(name: .long, help: "Address to listen on (default: CHAT_HOST, else 127.0.0.1 in local and test).")
    var hostname: String?

    @Option(name: .long, help: "Port to listen on (default: CHAT_PORT, else 8000).")
    var port: Int?

    @Flag(name: .long, help: "Do not apply pending migrations; refuse to start if any are pending.")
    var noMigrate = false

    func run() async throws {
        var config = try await ChatConfig.load()
        if let hostname { config.host = hostname }
        if let port { config.port = port }
        let logger = makeLogger(config)
        if case .sqlite = config.database {
            logger.info("Using the embedded SQLite database \(config.database) (single node)")
        } else {
            logger.info("Using PostgreSQL at \(config.database) as node \(config.cluster.nodeName)")
            if let listen = config.listenDatabase {
                logger.info("Listening to the other nodes through \(DatabaseLocation.postgres(listen))")
            }
            for replica in config.replicaDatabases {
                logger.info("Reading from the replica \(DatabaseLocation.postgres(replica)) when it has caught up")
            }
        }
        if case .sqlite(let path) = config.database { try SQLiteServeLock.acquire(databasePath: path) }
        let telemetry = Telemetry()
        let store = try await makeStore(
            for: config.database, listenLocation: config.listenDatabase,
            replicas: (config.replicaDatabases, config.replicaMaxLag), poolSize: config.databasePoolSize,
            nodeName: config.cluster.nodeName,
            metrics: telemetry.metrics, logger: logger)
        let options = StartupOptions(
            migrate: !noMigrate, seedDemoDataIntoEmptyDatabase: config.environment == .local)
        let app = try await buildApplication(
            config: config, store: store, telemetry: telemetry, options: options, logger: logger)
        // On SIGTERM or SIGINT: stop accepting, close WebSockets with 1001, let requests and
        // stores finish for up to CHAT_SHUTDOWN_GRACE_SECONDS, then close the database pool.
        var group = ServiceGroupConfiguration(
            services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = config.shutdownGrace
        try await ServiceGroup(configuration: group).run()
        logger.notice("chat-server stopped")
    }
}
