import Configuration
import Foundation
import Logging
import SystemPackage

/// Every setting of the server, read once at start-up. Each has one environment variable
/// (documented in the README); values may also come from `<CHAT_ENV>.env` in the
/// working directory, with real environment variables taking precedence.
public struct ChatConfig: Sendable {
    /// Deployment environment, from `CHAT_ENV`.
    public enum Environment: String, Sendable, CaseIterable {
        case local, dev, test, prod
    }

    public var environment: Environment
    /// Address to listen on (`CHAT_HOST`): 127.0.0.1 in local and test, 0.0.0.0 in dev and prod.
    public var host: String
    /// Port to listen on (`CHAT_PORT`, default 8000).
    public var port: Int
    /// `DATABASE_URL`, default `sqlite:chat.sqlite`.
    public var database: DatabaseLocation
    /// Where this node LISTENs for the other nodes' notifications (`DATABASE_LISTEN_URL`,
    /// PostgreSQL only): the database of `DATABASE_URL` reached without a transaction-pooling
    /// pooler between, since LISTEN holds a session. Nil uses `DATABASE_URL` (docs/operations.md).
    public var listenDatabase: PostgresLocation?
    /// Streaming replicas of the database that reads may go to (`DATABASE_REPLICA_URLS`,
    /// comma-separated, PostgreSQL only; none by default), and the most a replica in rotation
    /// may lag behind the primary (`CHAT_REPLICA_MAX_LAG_MS`, default 1000). docs/operations.md.
    public var replicaDatabases: [PostgresLocation]
    public var replicaMaxLag: Duration
    /// Most PostgreSQL connections this node opens (`CHAT_DATABASE_POOL_SIZE`, default 20).
    public var databasePoolSize: Int
    /// HMAC key for session tokens (`CHAT_JWT_SECRET`). Nil when it is not set, which `prod`
    /// refuses: the server then signs with the secret its database generated, which every node
    /// on that database shares (``ChatStore/generatedTokenSecret()``).
    public var jwtSecret: String?
    /// How long a session token is valid (`CHAT_TOKEN_LIFETIME_SECONDS`, default 86400).
    public var tokenLifetime: Duration
    /// Algorithm for new password hashes (`CHAT_PASSWORD_HASH`: bcrypt or pbkdf2-sha256).
    public var passwordHashAlgorithm: PasswordHashAlgorithm
    /// bcrypt work factor (`CHAT_BCRYPT_COST`, default 12).
    public var bcryptCost: Int
    /// PBKDF2 iterations (`CHAT_PBKDF2_ITERATIONS`, default 600000).
    public var pbkdf2Iterations: Int
    /// Input limits (`CHAT_PASSWORD_MIN_LENGTH`, `CHAT_MAX_MESSAGE_LENGTH`).
    public var inputRules: InputRules
    /// Largest accepted HTTP request body in bytes (`CHAT_MAX_BODY_BYTES`, default 65536).
    public var maxBodyBytes: Int
    /// Origins allowed to make cookie-authenticated requests besides the server's own
    /// (`CHAT_ALLOWED_ORIGINS`, comma-separated).
    public var allowedOrigins: [String]
    /// Failed log-ins allowed per account and per client address in a minute
    /// (`CHAT_LOGIN_FAILURES_PER_ACCOUNT`, default 10; `CHAT_LOGIN_FAILURES_PER_ADDRESS`, default 30).
    public var loginLimits: LoginThrottle.Limits
    /// Proxies whose `X-Forwarded-For` names the client (`CHAT_TRUSTED_PROXIES`, comma-separated
    /// IP addresses; none by default).
    public var trustedProxies: Set<String>
    /// Whether the session cookie is marked `Secure` (`CHAT_COOKIE_SECURE`; default on in prod).
    public var cookieSecure: Bool
    /// Log level (`CHAT_LOG_LEVEL`, default info).
    public var logLevel: Logger.Level
    /// Log line format (`CHAT_LOG_FORMAT`: text or json, default text).
    public var logFormat: ChatLogHandler.Format
    /// When set, `GET /metrics` needs it as a bearer token (`CHAT_METRICS_TOKEN`).
    public var metricsToken: String?
    /// How long a request head may take to arrive, from connecting or from its first byte
    /// (`CHAT_REQUEST_HEAD_TIMEOUT_SECONDS`, default 10): slow senders are closed with 408.
    public var requestHeadTimeout: Duration
    /// How long an HTTP keep-alive connection may be idle (`CHAT_IDLE_TIMEOUT_SECONDS`, default 60).
    public var idleTimeout: Duration
    /// Most client connections (HTTP and WebSocket) open at once (`CHAT_MAX_CONNECTIONS`);
    /// further ones get 503. Defaults to the open-file limit less what the server keeps for
    /// its database and files.
    public var maxConnections: Int
    /// How long a stopping server waits for connections and requests to finish before it
    /// cancels them (`CHAT_SHUTDOWN_GRACE_SECONDS`, default 10).
    public var shutdownGrace: Duration
    /// The WebSocket layer's limits.
    public var webSocket: WebSocketSettings
    /// When sends are refused with `overloaded` instead of queued (``SendAdmission``): the
    /// longest wait for its commit a send may expect (`CHAT_SEND_MAX_WAIT_MS`, default 500 on
    /// PostgreSQL and 250 on SQLite; see ``defaultSendMaxWaitMilliseconds(for:)``), and the most
    /// sends the node holds unanswered (`CHAT_SEND_MAX_QUEUED`, default 10000).
    public var sendLimits: SendAdmission.Limits
    /// How this node names itself to the others on one PostgreSQL database (`CHAT_NODE_NAME`,
    /// default `<host name>-<process id>`; at most 63 characters, each a letter, digit, `.`,
    /// `_` or `-`), and how often it records its heartbeat (`CHAT_HEARTBEAT_INTERVAL_MS`,
    /// default 2000). See docs/scaling.md.
    public var cluster: ClusterLink.Settings

    /// The default `CHAT_SEND_MAX_WAIT_MS`. The bound is on the wait a send is expected to have;
    /// the waits around that expectation spread further behind SQLite's one writer than behind
    /// a pool of PostgreSQL connections. Under three times the load it stores, accepted sends'
    /// p99 send→ack ran at 1.7–1.9× the bound on SQLite, so its default is half PostgreSQL's,
    /// which holds that p99 under a second for about 3% less throughput (docs/reliability.md).
    static func defaultSendMaxWaitMilliseconds(for database: DatabaseLocation) -> Int {
        if case .sqlite = database { return 250 }
        return Int(SendAdmission.Limits.default.maxWait / .milliseconds(1))
    }

    /// The open-file limit less 100 descriptors for the database pool, logs and files (at
    /// least 16).
    static func defaultMaxConnections() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(Int32.max) else {
            return 10_000
        }
        return max(16, Int(clamping: limit.rlim_cur) - 100)
    }

    /// A second PostgreSQL URL of the same deployment (`DATABASE_LISTEN_URL`, one of
    /// `DATABASE_REPLICA_URLS`): only a postgres:// URL, and only with a PostgreSQL `database`.
    private static func postgres(
        _ url: String, variable: String, beside database: DatabaseLocation
    ) throws -> PostgresLocation {
        let location = try DatabaseLocation(url: url, variable: variable)
        guard case .postgres(let postgres) = location, case .postgres = database else {
            throw ConfigError.invalid(
                variable, location.description, "must be a postgres:// URL, with a PostgreSQL DATABASE_URL")
        }
        return postgres
    }

    /// The smallest secret accepted, in bytes: HS256's output size.
    public static let minimumSecretBytes = 32
    /// Secrets shipped in the repository's examples (docker-compose.yml, docs): never valid in prod.
    public static let exampleSecrets: Set<String> = [
        "change-me-to-a-long-random-secret-of-32-bytes-or-more"
    ]

    /// Reads the configuration from `environment` (the process environment by default) and the
    /// `<CHAT_ENV>.env` file in `directory`, if there is one.
    /// - Throws: ``ConfigError`` naming the variable when a value is invalid, or when prod is
    ///   configured with a weak secret.
    public static func load(
        environment variables: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = FileManager.default.currentDirectoryPath
    ) async throws -> ChatConfig {
        let environmentName = variables["CHAT_ENV"] ?? Environment.local.rawValue
        guard let environment = Environment(rawValue: environmentName) else {
            throw ConfigError.invalid("CHAT_ENV", environmentName, "must be one of local, dev, test, prod")
        }
        let envFile = URL(fileURLWithPath: directory).appendingPathComponent("\(environment.rawValue).env").path
        let reader = ConfigReader(providers: [
            EnvironmentVariablesProvider(environmentVariables: variables),
            try await EnvironmentVariablesProvider(environmentFilePath: FilePath(envFile), allowMissing: true),
        ])
        return try ChatConfig(environment: environment, settings: Settings(reader: reader))
    }

    init(environment: Environment, settings: Settings) throws {
        self.environment = environment
        let isProd = environment == .prod
        host = settings.string("CHAT_HOST") ?? (environment == .local || environment == .test ? "127.0.0.1" : "0.0.0.0")
        port = try settings.int("CHAT_PORT", default: 8000, in: 1...65535)
        let database = try DatabaseLocation(url: settings.string("DATABASE_URL") ?? "sqlite:chat.sqlite")
        self.database = database
        listenDatabase = try settings.string("DATABASE_LISTEN_URL").map {
            try Self.postgres($0, variable: "DATABASE_LISTEN_URL", beside: database)
        }
        replicaDatabases = try (settings.string("DATABASE_REPLICA_URLS") ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .map { try Self.postgres($0, variable: "DATABASE_REPLICA_URLS", beside: database) }
        replicaMaxLag = .milliseconds(try settings.int("CHAT_REPLICA_MAX_LAG_MS", default: 1000, in: 10...3_600_000))
        databasePoolSize = try settings.int("CHAT_DATABASE_POOL_SIZE", default: 20, in: 1...1000)

        if let secret = settings.string("CHAT_JWT_SECRET", isSecret: true) {
            if isProd, Self.exampleSecrets.contains(secret) {
                throw ConfigError.weakSecret(
                    "CHAT_JWT_SECRET is the example value from the repository; generate one with `openssl rand -base64 48`."
                )
            }
            // HS256 keys shorter than the hash output are weak, and JWTKit rejects them.
            if secret.utf8.count < Self.minimumSecretBytes {
                throw ConfigError.weakSecret(
                    "CHAT_JWT_SECRET must be at least \(Self.minimumSecretBytes) bytes (it has \(secret.utf8.count)).")
            }
            jwtSecret = secret
        } else if isProd {
            throw ConfigError.weakSecret(
                "CHAT_JWT_SECRET is not set; prod needs a random secret of at least \(Self.minimumSecretBytes) bytes (`openssl rand -base64 48`)."
            )
        } else {
            jwtSecret = nil
        }
        tokenLifetime = .seconds(try settings.int("CHAT_TOKEN_LIFETIME_SECONDS", default: 86_400, in: 60...31_536_000))

        let algorithmName = settings.string("CHAT_PASSWORD_HASH") ?? PasswordHashAlgorithm.bcrypt.rawValue
        guard let algorithm = PasswordHashAlgorithm(rawValue: algorithmName) else {
            throw ConfigError.invalid("CHAT_PASSWORD_HASH", algorithmName, "must be bcrypt or pbkdf2-sha256")
        }
        passwordHashAlgorithm = algorithm
        bcryptCost = try settings.int("CHAT_BCRYPT_COST", default: 12, in: (isProd ? 10 : 4)...31)
        pbkdf2Iterations = try settings.int(
            "CHAT_PBKDF2_ITERATIONS", default: 600_000, in: (isProd ? 210_000 : 1)...100_000_000)
        inputRules = InputRules(
            minPasswordLength: try settings.int(
                "CHAT_PASSWORD_MIN_LENGTH", default: 8, in: 1...algorithm.maxPasswordBytes),
            maxMessageLength: try settings.int("CHAT_MAX_MESSAGE_LENGTH", default: 4096, in: 1...1_000_000))
        maxBodyBytes = try settings.int("CHAT_MAX_BODY_BYTES", default: 65_536, in: 1024...(64 << 20))
        allowedOrigins = try (settings.string("CHAT_ALLOWED_ORIGINS") ?? "")
            .split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .map { origin in
                guard let url = URL(string: origin), url.scheme == "http" || url.scheme == "https", url.host != nil,
                    url.path.isEmpty
                else {
                    throw ConfigError.invalid(
                        "CHAT_ALLOWED_ORIGINS", origin, "each origin must look like https://chat.example.com")
                }
                return origin
            }
        loginLimits = LoginThrottle.Limits(
            perAccount: try settings.int("CHAT_LOGIN_FAILURES_PER_ACCOUNT", default: 10, in: 1...1_000_000),
            perAddress: try settings.int("CHAT_LOGIN_FAILURES_PER_ADDRESS", default: 30, in: 1...1_000_000))
        trustedProxies = Set(
            (settings.string("CHAT_TRUSTED_PROXIES") ?? "").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        cookieSecure = try settings.bool("CHAT_COOKIE_SECURE", default: isProd)
        let levelName = settings.string("CHAT_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ConfigError.invalid(
                "CHAT_LOG_LEVEL", levelName, "must be trace, debug, info, notice, warning, error or critical")
        }
        logLevel = level
        let formatName = settings.string("CHAT_LOG_FORMAT") ?? ChatLogHandler.Format.text.rawValue
        guard let format = ChatLogHandler.Format(rawValue: formatName) else {
            throw ConfigError.invalid("CHAT_LOG_FORMAT", formatName, "must be text or json")
        }
        logFormat = format
        metricsToken = settings.string("CHAT_METRICS_TOKEN", isSecret: true)
        shutdownGrace = .seconds(try settings.int("CHAT_SHUTDOWN_GRACE_SECONDS", default: 10, in: 1...3600))
        requestHeadTimeout = .seconds(try settings.int("CHAT_REQUEST_HEAD_TIMEOUT_SECONDS", default: 10, in: 1...3600))
        idleTimeout = .seconds(try settings.int("CHAT_IDLE_TIMEOUT_SECONDS", default: 60, in: 1...86_400))
        maxConnections = try settings.int(
            "CHAT_MAX_CONNECTIONS", default: Self.defaultMaxConnections(), in: 1...10_000_000)
        webSocket = WebSocketSettings(
            maxFrameBytes: try settings.int("CHAT_WS_MAX_FRAME_BYTES", default: 65_536, in: 1024...(16 << 20)),
            connectionsPerUser: try settings.int("CHAT_WS_CONNECTIONS_PER_USER", default: 10, in: 1...10_000),
            outboxFrames: try settings.int("CHAT_WS_OUTBOX_FRAMES", default: 1024, in: 16...1_000_000),
            outboxBytes: try settings.int("CHAT_WS_OUTBOX_BYTES", default: 4 << 20, in: (64 << 10)...(1 << 30)),
            sendsPerSecond: try settings.int("CHAT_WS_SEND_RATE", default: 20, in: 1...1_000_000),
            sendBurst: try settings.int("CHAT_WS_SEND_BURST", default: 40, in: 1...1_000_000),
            pingInterval: .seconds(try settings.int("CHAT_WS_PING_SECONDS", default: 30, in: 1...3600)))
        sendLimits = SendAdmission.Limits(
            maxWait: .milliseconds(
                try settings.int(
                    "CHAT_SEND_MAX_WAIT_MS", default: Self.defaultSendMaxWaitMilliseconds(for: database),
                    in: 10...600_000)),
            maxQueued: try settings.int(
                "CHAT_SEND_MAX_QUEUED", default: SendAdmission.Limits.default.maxQueued, in: 1...10_000_000))
        let nodeName = settings.string("CHAT_NODE_NAME") ?? Self.defaultNodeName()
        guard nodeName.utf8.count <= 63,
            nodeName.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
        else {
            throw ConfigError.invalid(
                "CHAT_NODE_NAME", nodeName, "must be at most 63 letters, digits, dots, underscores or hyphens")
        }
        cluster = ClusterLink.Settings(
            nodeName: nodeName,
            heartbeatInterval: .milliseconds(
                try settings.int("CHAT_HEARTBEAT_INTERVAL_MS", default: 2000, in: 100...60_000)))
    }

    /// The host name (its first label, without characters a node name may not hold) and the
    /// process id: unique among nodes on distinct hosts or in one host's processes.
    static func defaultNodeName() -> String {
        let host = ProcessInfo.processInfo.hostName.prefix { $0 != "." }
            .filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        return "\(host.prefix(48))-\(ProcessInfo.processInfo.processIdentifier)"
    }
}

/// Limits of the WebSocket layer, each with its own variable.
public struct WebSocketSettings: Sendable, Equatable {
    /// Largest frame (and message) a client may send; larger ones close the connection with
    /// 1009 (`CHAT_WS_MAX_FRAME_BYTES`, default 65536).
    public var maxFrameBytes: Int
    /// Most connections one user may hold on one server (`CHAT_WS_CONNECTIONS_PER_USER`, default 10).
    public var connectionsPerUser: Int
    /// Frames waiting for a connection (its socket full, or held while it catches up) before
    /// it counts as a slow consumer and is closed with 4001 (`CHAT_WS_OUTBOX_FRAMES`, default 1024).
    public var outboxFrames: Int
    /// Bytes waiting for a connection before it is closed with 4001 (`CHAT_WS_OUTBOX_BYTES`,
    /// default 4 MiB): the bound on a slow connection's memory, whatever its frames' size.
    public var outboxBytes: Int
    /// Sustained `send` frames per second per connection (`CHAT_WS_SEND_RATE`, default 20).
    public var sendsPerSecond: Int
    /// Sends a connection may make in a burst above the rate (`CHAT_WS_SEND_BURST`, default 40).
    public var sendBurst: Int
    /// How often the server pings; a connection that misses a pong is closed
    /// (`CHAT_WS_PING_SECONDS`, default 30).
    public var pingInterval: Duration

    /// What may wait in one connection's ``Outbox``.
    public var outboxLimits: Outbox.Limits { Outbox.Limits(frames: outboxFrames, bytes: outboxBytes) }

    /// Shortest interval between two `typing` frames of one connection in one chat that are
    /// passed on; others are dropped.
    public static let typingInterval: Duration = .seconds(1)
}

/// A configuration value that cannot be used. The description names the variable and says
/// what would be accepted.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case invalid(_ variable: String, _ value: String, _ expectation: String)
    case weakSecret(String)

    public var description: String {
        switch self {
        case .invalid(let variable, let value, let expectation): "\(variable)=\"\(value)\" is invalid: \(expectation)."
        case .weakSecret(let reason): "Refusing to start: \(reason)"
        }
    }
}

/// Typed, strict access to the raw settings: a value that is present but malformed is an
/// error, never silently replaced by the default.
struct Settings {
    let reader: ConfigReader

    func string(_ variable: String, isSecret: Bool = false) -> String? {
        guard let value = reader.string(forKey: Self.key(variable), isSecret: isSecret) else { return nil }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
    }

    func int(_ variable: String, default defaultValue: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let text = string(variable) else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw ConfigError.invalid(
                variable, text, "must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    func bool(_ variable: String, default defaultValue: Bool) throws -> Bool {
        guard let text = string(variable) else { return defaultValue }
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigError.invalid(variable, text, "must be true or false")
        }
    }

    /// swift-configuration's environment provider maps the key `chat.jwt_secret` to the variable
    /// `CHAT_JWT_SECRET`; this goes the other way so the code can name variables as documented.
    private static func key(_ variable: String) -> ConfigKey {
        let parts = variable.lowercased().split(separator: "_", maxSplits: 1).map(String.init)
        return ConfigKey(parts)
    }
}
