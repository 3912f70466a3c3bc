import ChatServer
import Foundation
import Testing

@Suite("Configuration")
struct ConfigTests {
    @Test func defaultsSuitTheLocalEnvironment() async throws {
        let config = try await ChatConfig.load(environment: [:], directory: "/nonexistent")
        #expect(config.environment == .local)
        #expect(config.host == "127.0.0.1" && config.port == 8000)
        #expect(config.database == .sqlite(path: "chat.sqlite"))
        #expect(config.jwtSecret == nil, "the database's generated secret signs sessions")
        #expect(config.passwordHashAlgorithm == .bcrypt && config.bcryptCost == 12)
        #expect(config.inputRules == InputRules(minPasswordLength: 8, maxMessageLength: 4096))
        #expect(config.tokenLifetime == .seconds(86_400))
        #expect(!config.cookieSecure)
    }

    @Test func everySettingIsRead() async throws {
        let config = try await ChatConfig.load(
            environment: [
                "CHAT_ENV": "dev", "CHAT_HOST": "10.0.0.5", "CHAT_PORT": "9000",
                "DATABASE_URL": "postgres://chat:p%40ss@db.internal:6543/chat?sslmode=require",
                "CHAT_DATABASE_POOL_SIZE": "7", "CHAT_JWT_SECRET": "a-dev-secret-that-is-32-bytes-or-more",
                "CHAT_TOKEN_LIFETIME_SECONDS": "600", "CHAT_PASSWORD_HASH": "pbkdf2-sha256",
                "CHAT_BCRYPT_COST": "11", "CHAT_PBKDF2_ITERATIONS": "250000", "CHAT_PASSWORD_MIN_LENGTH": "12",
                "CHAT_MAX_MESSAGE_LENGTH": "2000", "CHAT_MAX_BODY_BYTES": "4096",
                "CHAT_ALLOWED_ORIGINS": "https://chat.example.com, http://localhost:3000",
                "CHAT_COOKIE_SECURE": "true", "CHAT_LOG_LEVEL": "debug", "CHAT_LOGIN_FAILURES_PER_ACCOUNT": "5",
                "CHAT_LOGIN_FAILURES_PER_ADDRESS": "50", "CHAT_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2",
                "CHAT_REQUEST_HEAD_TIMEOUT_SECONDS": "5", "CHAT_IDLE_TIMEOUT_SECONDS": "90",
                "CHAT_NODE_NAME": "eu-west.node_2", "CHAT_HEARTBEAT_INTERVAL_MS": "500",
                "CHAT_WS_OUTBOX_FRAMES": "64", "CHAT_WS_OUTBOX_BYTES": "1048576",
                "DATABASE_LISTEN_URL": "postgres://chat:p%40ss@db.internal:5432/chat?sslmode=require",
                "DATABASE_REPLICA_URLS": "postgres://chat@replica-1:5432/chat, postgres://chat@replica-2/chat",
                "CHAT_REPLICA_MAX_LAG_MS": "250",
            ], directory: "/nonexistent")
        #expect(config.environment == .dev && config.host == "10.0.0.5" && config.port == 9000)
        #expect(
            config.database
                == .postgres(
                    PostgresLocation(
                        host: "db.internal", port: 6543, username: "chat", password: "p@ss", database: "chat",
                        tls: .require)))
        #expect(
            config.listenDatabase
                == PostgresLocation(
                    host: "db.internal", port: 5432, username: "chat", password: "p@ss", database: "chat", tls: .require
                ))
        #expect(config.replicaDatabases.map { "\($0.host):\($0.port)" } == ["replica-1:5432", "replica-2:5432"])
        #expect(config.replicaMaxLag == .milliseconds(250))
        #expect(config.databasePoolSize == 7 && config.jwtSecret == "a-dev-secret-that-is-32-bytes-or-more")
        #expect(config.tokenLifetime == .seconds(600))
        #expect(config.passwordHashAlgorithm == .pbkdf2SHA256 && config.bcryptCost == 11)
        #expect(config.pbkdf2Iterations == 250_000)
        #expect(config.inputRules == InputRules(minPasswordLength: 12, maxMessageLength: 2000))
        #expect(config.maxBodyBytes == 4096 && config.cookieSecure && config.logLevel == .debug)
        #expect(config.allowedOrigins == ["https://chat.example.com", "http://localhost:3000"])
        #expect(config.loginLimits == LoginThrottle.Limits(perAccount: 5, perAddress: 50))
        #expect(config.trustedProxies == ["10.0.0.1", "10.0.0.2"])
        #expect(config.requestHeadTimeout == .seconds(5) && config.idleTimeout == .seconds(90))
        #expect(config.cluster.nodeName == "eu-west.node_2" && config.cluster.heartbeatInterval == .milliseconds(500))
        #expect(config.cluster.expiry == .milliseconds(1500))
        #expect(config.webSocket.outboxLimits == Outbox.Limits(frames: 64, bytes: 1 << 20))
    }

    @Test func aListenOrReplicaURLNeedsPostgreSQLOnBothSettings() async throws {
        let defaulted = try await ChatConfig.load(
            environment: ["DATABASE_URL": "postgres://chat@localhost/chat"], directory: "/nonexistent")
        #expect(defaulted.listenDatabase == nil, "the node LISTENs through DATABASE_URL")
        #expect(defaulted.replicaDatabases.isEmpty && defaulted.replicaMaxLag == .seconds(1))
        for environment in [
            ["DATABASE_LISTEN_URL": "postgres://chat:secret@localhost/chat"],
            ["DATABASE_URL": "postgres://chat@localhost/chat", "DATABASE_LISTEN_URL": "sqlite:chat.sqlite"],
            ["DATABASE_URL": "postgres://chat@localhost/chat", "DATABASE_LISTEN_URL": "postgres://"],
            ["DATABASE_REPLICA_URLS": "postgres://chat:secret@replica/chat"],
            ["DATABASE_URL": "postgres://chat@localhost/chat", "DATABASE_REPLICA_URLS": "postgres://r/c,sqlite:x"],
        ] {
            let error = await #expect(throws: ConfigError.self) {
                try await ChatConfig.load(environment: environment, directory: "/nonexistent")
            }
            #expect(error?.description.contains(environment.keys.first { $0 != "DATABASE_URL" } ?? "") == true)
            #expect(error?.description.contains("secret") == false, "the password stays out of the message")
        }
    }

    @Test func theSendWaitBoundDefaultsToHalfOnSQLitesOneWriter() async throws {
        let sqlite = try await ChatConfig.load(environment: [:], directory: "/nonexistent")
        #expect(sqlite.sendLimits == SendAdmission.Limits(maxWait: .milliseconds(250), maxQueued: 10_000))
        let postgres = try await ChatConfig.load(
            environment: ["DATABASE_URL": "postgres://chat@localhost/chat"], directory: "/nonexistent")
        #expect(postgres.sendLimits == .default)
        let given = try await ChatConfig.load(
            environment: ["CHAT_SEND_MAX_WAIT_MS": "800", "CHAT_SEND_MAX_QUEUED": "50"], directory: "/nonexistent")
        #expect(given.sendLimits == SendAdmission.Limits(maxWait: .milliseconds(800), maxQueued: 50))
    }

    @Test func theDefaultNodeNameIsAValidOne() async throws {
        let name = try await ChatConfig.load(environment: [:], directory: "/nonexistent").cluster.nodeName
        #expect(name.hasSuffix("-\(ProcessInfo.processInfo.processIdentifier)"))
        let given = try await ChatConfig.load(environment: ["CHAT_NODE_NAME": name], directory: "/nonexistent")
        #expect(given.cluster.nodeName == name, "the default passes the rules a given name must pass")
    }

    @Test func theEnvironmentFileFillsInButRealVariablesWin() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-config-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "CHAT_PORT=9100\nCHAT_LOG_LEVEL=warning\n# a comment\n".write(
            to: directory.appendingPathComponent("dev.env"), atomically: true, encoding: .utf8)
        let config = try await ChatConfig.load(
            environment: ["CHAT_ENV": "dev", "CHAT_LOG_LEVEL": "error"], directory: directory.path)
        #expect(config.port == 9100)
        #expect(config.logLevel == .error)
        #expect(config.host == "0.0.0.0", "dev listens on every interface by default")
    }

    @Test(
        "malformed values are errors naming the variable",
        arguments: [
            ("CHAT_ENV", "staging"), ("CHAT_PORT", "eighty"), ("CHAT_PORT", "70000"), ("CHAT_BCRYPT_COST", "3"),
            ("CHAT_PASSWORD_HASH", "md5"), ("DATABASE_URL", "mysql://x"), ("DATABASE_URL", "sqlite:"),
            ("DATABASE_URL", "postgres://u@h/db?sslmode=maybe"), ("CHAT_COOKIE_SECURE", "perhaps"),
            ("CHAT_ALLOWED_ORIGINS", "chat.example.com"), ("CHAT_JWT_SECRET", "shorter-than-32-bytes"),
            ("CHAT_LOG_LEVEL", "loud"), ("CHAT_MAX_BODY_BYTES", "12"), ("CHAT_NODE_NAME", "node 1"),
            ("CHAT_NODE_NAME", String(repeating: "n", count: 64)), ("CHAT_HEARTBEAT_INTERVAL_MS", "50"),
            ("CHAT_WS_OUTBOX_BYTES", "1000"), ("CHAT_REPLICA_MAX_LAG_MS", "5"),
        ])
    func malformedValuesAreErrors(_ variable: String, _ value: String) async throws {
        let error = await #expect(throws: ConfigError.self) {
            try await ChatConfig.load(environment: [variable: value], directory: "/nonexistent")
        }
        #expect(error?.description.contains(variable) == true)
    }

    @Test func prodRefusesMissingShortOrExampleSecrets() async throws {
        let weak = [nil, "too-short", ChatConfig.exampleSecrets.first]
        for secret in weak {
            var environment = ["CHAT_ENV": "prod"]
            environment["CHAT_JWT_SECRET"] = secret
            let error = await #expect(throws: ConfigError.self) {
                try await ChatConfig.load(environment: environment, directory: "/nonexistent")
            }
            #expect(error?.description.contains("CHAT_JWT_SECRET") == true)
        }
        let config = try await ChatConfig.load(
            environment: ["CHAT_ENV": "prod", "CHAT_JWT_SECRET": String(repeating: "k", count: 32)],
            directory: "/nonexistent")
        #expect(config.cookieSecure, "prod cookies are Secure by default")
        await #expect(throws: ConfigError.self, "prod refuses weak bcrypt costs") {
            try await ChatConfig.load(
                environment: [
                    "CHAT_ENV": "prod", "CHAT_JWT_SECRET": String(repeating: "k", count: 32), "CHAT_BCRYPT_COST": "8",
                ],
                directory: "/nonexistent")
        }
    }

    @Test func databaseLocationsHideTheirPassword() throws {
        let location = try DatabaseLocation(url: "postgresql://chat:secret@127.0.0.1/chat")
        #expect("\(location)" == "postgres://chat@127.0.0.1:5432/chat")
        #expect(try DatabaseLocation(url: "sqlite:///var/lib/chat.sqlite") == .sqlite(path: "/var/lib/chat.sqlite"))
    }
}
