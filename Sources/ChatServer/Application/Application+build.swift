import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// How `serve` prepares the database before it accepts requests.
public struct StartupOptions: Sendable {
    /// Apply pending migrations (under an advisory lock on PostgreSQL). When false, start-up
    /// fails if any are pending.
    public var migrate: Bool
    /// Load the demo users and chats when the database has no users (local environment only).
    public var seedDemoDataIntoEmptyDatabase: Bool

    public init(migrate: Bool = true, seedDemoDataIntoEmptyDatabase: Bool = false) {
        self.migrate = migrate
        self.seedDemoDataIntoEmptyDatabase = seedDemoDataIntoEmptyDatabase
    }
}

/// The services behind the routes, built once from configuration.
public struct ChatComponents: Sendable {
    public let config: ChatConfig
    public let store: any ChatStore
    public let hasher: PasswordHasher
    public let accounts: AccountService
    public let chats: ChatService
    /// Edits and deletions of messages.
    public let editing: MessageEditing
    /// Full-text search of messages.
    public let search: MessageSearch
    /// The real-time core: live delivery to WebSocket connections.
    public let hub: ChatHub
    /// Sends from live connections: persist, then publish, then ack.
    public let sends: LiveSend
    /// `resume`s of live connections: hold, read what was missed, release.
    public let resumes: LiveResume
    /// The time as the WebSocket sessions' rate limits read it, on the components' clock.
    public let stopwatch: Stopwatch
    /// The link to the other nodes on the same PostgreSQL database; nil on SQLite, which
    /// serves one node.
    public let cluster: ClusterLink?
    /// Each user's connections on all nodes, for the per-user cap; nil on SQLite, where the
    /// hub's count is the server's.
    let clusterConnections: ClusterConnections?
    /// Where events that open connections must hear of go: the cluster link, else the hub.
    public var events: any ChatEvents { cluster ?? hub }
    public let generation = DatabaseGeneration()
    public let telemetry: Telemetry
    let logger: Logger

    /// - Parameter clock: what the real-time core waits on and reads the time from; tests pass
    ///   a clock they move themselves.
    public init(
        config: ChatConfig, store: any ChatStore, telemetry: Telemetry, clock: any Clock<Duration> = ContinuousClock(),
        logger: Logger
    ) async throws {
        self.config = config
        self.stopwatch = Stopwatch(clock)
        self.store = store
        self.telemetry = telemetry
        self.logger = logger
        self.hasher = PasswordHasher(
            algorithm: config.passwordHashAlgorithm, bcryptCost: config.bcryptCost,
            pbkdf2Iterations: config.pbkdf2Iterations)
        self.hub = ChatHub(
            store: store,
            limits: .init(
                connectionsPerUser: config.webSocket.connectionsPerUser, heldFrames: config.webSocket.outboxFrames),
            clock: clock, metrics: telemetry.metrics, logger: logger)
        let hub = self.hub
        let tokens = await TokenService(secret: config.jwtSecret, lifetime: config.tokenLifetime)
        let hasher = self.hasher
        let cluster = (store as? PostgresChatStore).map {
            ClusterLink(
                settings: config.cluster, hub: hub, store: $0,
                sharedSettings: { SharedSettings(tokens: tokens, hasher: hasher) }, clock: clock,
                metrics: telemetry.metrics, logger: logger)
        }
        self.cluster = cluster
        self.clusterConnections = (store as? PostgresChatStore).map {
            ClusterConnections(
                store: $0, node: config.cluster.nodeName, cap: config.webSocket.connectionsPerUser, clock: clock,
                logger: logger)
        }
        let events: any ChatEvents = cluster ?? hub
        // Failed log-ins count for all nodes in PostgreSQL; SQLite serves one node.
        let loginFailures: any LoginFailureLog = (store as? PostgresChatStore) ?? LocalLoginFailures()
        self.accounts = try await AccountService(
            store: store, hasher: hasher, tokens: tokens, rules: config.inputRules, events: events,
            throttle: LoginThrottle(limits: config.loginLimits, failures: loginFailures), logger: logger)
        self.chats = ChatService(
            store: store, rules: config.inputRules, events: events, sendLimits: config.sendLimits,
            stopwatch: stopwatch)
        self.editing = MessageEditing(store: store, rules: config.inputRules, events: events)
        self.search = MessageSearch(store: store)
        self.sends = LiveSend(chats: chats, hub: hub, metrics: telemetry.metrics)
        self.resumes = LiveResume(chats: chats, hub: hub)
    }
}

/// Builds the HTTP application: routes, the store as a service, and database preparation
/// before the server starts listening.
/// - Parameter clock: see ``ChatComponents/init(config:store:telemetry:clock:logger:)``.
public func buildApplication(
    config: ChatConfig, store: any ChatStore, telemetry: Telemetry, options: StartupOptions,
    clock: any Clock<Duration> = ContinuousClock(), logger: Logger
) async throws -> some ApplicationProtocol {
    let components = try await ChatComponents(
        config: config, store: store, telemetry: telemetry, clock: clock, logger: logger)
    let router = buildRouter(components)
    let upgradeRouter = router.buildResponder()
    let webSocket = WebSocketUpgradeChannel.Configuration(
        maxFrameSize: config.webSocket.maxFrameBytes, pingInterval: config.webSocket.pingInterval,
        requestHeadTimeout: config.requestHeadTimeout, idleTimeout: config.idleTimeout,
        connections: OpenConnections(limit: config.maxConnections), metrics: telemetry.metrics)
    var app = Application(
        router: router,
        server: HTTPServerBuilder { responder in
            WebSocketUpgradeChannel(responder: responder, upgradeRouter: upgradeRouter, configuration: webSocket)
        },
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil),
        services: [store, components.hub]
            + ([components.cluster, components.clusterConnections] as [(any Service)?]).compactMap { $0 },
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? config.port
            let host = config.host == "0.0.0.0" ? "127.0.0.1" : config.host
            logger.notice("chat-server is ready at http://\(host):\(port)/ (API docs: http://\(host):\(port)/docs)")
        },
        logger: logger
    )
    app.beforeServerStarts {
        try await prepareDatabase(components, options: options, logger: logger)
    }
    return app
}

/// Every route of the server in one place.
public func buildRouter(_ components: ChatComponents) -> Router<ChatRequestContext> {
    let config = components.config
    let router = Router(context: ChatRequestContext.self)
    router.add(middleware: RequestObservationMiddleware(metrics: components.telemetry.metrics))
    router.add(middleware: SecurityHeadersMiddleware())
    let assets = WebAssets()
    let errorPages = ErrorPages(assets: assets)
    router.add(middleware: ErrorMiddleware(pages: errorPages))
    let methods = RouteMethods()
    router.add(middleware: MethodNotAllowedMiddleware(routes: methods))

    let users = UserController(
        accounts: components.accounts, maxBodyBytes: config.maxBodyBytes, cookieSecure: config.cookieSecure)
    let auth = AuthController(
        accounts: components.accounts, maxBodyBytes: config.maxBodyBytes, cookieSecure: config.cookieSecure,
        trustedProxies: config.trustedProxies)
    users.addPublicRoutes(to: router)
    auth.addPublicRoutes(to: router)
    APIDocsController(assets: assets).addPublicRoutes(to: router)
    LimitsController(limits: config.inputRules.limits(maxPasswordBytes: config.passwordHashAlgorithm.maxPasswordBytes))
        .addPublicRoutes(to: router)
    WebController(accounts: components.accounts, chats: components.chats, assets: assets, pages: errorPages)
        .addPublicRoutes(to: router)
    OperationsController(
        store: components.store, cluster: components.cluster, registry: components.telemetry.registry,
        metrics: components.telemetry.metrics, metricsToken: config.metricsToken
    ).addPublicRoutes(to: router)

    let originPolicy = OriginPolicy(allowedOrigins: config.allowedOrigins)
    let withSession = router.group()
        .add(middleware: AuthMiddleware(accounts: components.accounts, originPolicy: originPolicy))
    WebSocketController(
        chats: components.chats, hub: components.hub, sends: components.sends, resumes: components.resumes,
        events: components.events, stopwatch: components.stopwatch, generation: components.generation,
        clusterConnections: components.clusterConnections, originPolicy: originPolicy, settings: config.webSocket,
        metrics: components.telemetry.metrics,
        logger: components.logger
    ).addRoutes(to: withSession)
    let authenticated = withSession.group(context: AuthenticatedContext.self)
    users.addRoutes(to: authenticated)
    auth.addRoutes(to: authenticated)
    ChatController(chats: components.chats, maxBodyBytes: config.maxBodyBytes).addRoutes(to: authenticated)
    MessageController(editing: components.editing, maxBodyBytes: config.maxBodyBytes).addRoutes(to: authenticated)
    SearchController(search: components.search).addRoutes(to: authenticated)
    AdminController(store: components.store, hub: components.hub, cluster: components.cluster).addRoutes(
        to: authenticated)
    methods.learn(router.routes)
    return router
}

/// Applies migrations (or checks none are pending) and seeds demo data when asked.
func prepareDatabase(_ components: ChatComponents, options: StartupOptions, logger: Logger) async throws {
    let store = components.store
    try await store.checkConnection()
    if options.migrate {
        for migration in try await store.migrateUp() {
            logger.notice("Applied migration \(migration.version) (\(migration.name))")
        }
    } else {
        let pending = try await store.migrationStatus().filter { $0.appliedAt == nil }
        guard pending.isEmpty else { throw StartupError.pendingMigrations(pending.map(\.migration.version)) }
    }
    try await components.generation.load(from: store)
    if components.config.jwtSecret == nil {
        await components.accounts.tokens.use(secret: try await store.generatedTokenSecret())
        logger.notice(
            "CHAT_JWT_SECRET is not set: signing sessions with the secret this database generated, which every node on it shares (prod requires the setting)"
        )
    }
    if options.seedDemoDataIntoEmptyDatabase, try await store.counts().users == 0 {
        try await DemoSeeder(store: store, hasher: components.hasher, rules: components.config.inputRules).seed()
        logger.notice(
            "Loaded demo data: log in as \(DemoSeeder.userNames.joined(separator: ", ")) with password \(DemoSeeder.password)"
        )
    }
    try await components.clusterConnections?.forgetEarlierLife()
    components.cluster?.databaseIsPrepared()
}

/// Why the server refuses to start.
public enum StartupError: Error, CustomStringConvertible {
    case pendingMigrations([Int])
    /// Another `chat-server serve` holds the SQLite database at this path.
    case sqliteInUse(String)

    public var description: String {
        switch self {
        case .pendingMigrations(let versions):
            "Migrations \(versions.map(String.init).joined(separator: ", ")) are pending and --no-migrate was given: "
                + "run `chat-server migrate up` first."
        case .sqliteInUse(let path):
            "Another chat-server is serving \(path): a SQLite database serves a single node. To run several "
                + "nodes, point them all at one PostgreSQL database (docs/scaling.md)."
        }
    }
}
