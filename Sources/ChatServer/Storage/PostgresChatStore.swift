import ChatProtocol
import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// ``ChatStore`` on PostgreSQL through a PostgresNIO connection pool, in plain SQL.
///
/// Invariants are single statements or short transactions under row locks, so any number of
/// server nodes can share one database.
public final class PostgresChatStore: ChatStore, BulkMessageFill {
    let client: PostgresClient
    /// The streaming replicas reads may go to (`DATABASE_REPLICA_URLS`); nil without any.
    let replicas: ReplicaSet?
    /// A connection of its own to the database, for checks that must not wait on the pool.
    let connectionConfiguration: PostgresConnection.Configuration
    /// The cluster's LISTEN connection when it goes elsewhere (`DATABASE_LISTEN_URL`).
    let separateListenConfiguration: PostgresConnection.Configuration?
    let logger: Logger
    let waitLimits: WaitLimits
    private let metrics: ChatMetrics

    /// Key of the advisory lock that serialises migrations across nodes starting together.
    private static let migrationLockKey: Int64 = 0x6368_6174_6D69_6772  // "chatmigr"

    /// How long a request waits on the database before it fails with 503 (`storage_unavailable`).
    public struct WaitLimits: Sendable {
        /// For a pooled connection.
        public var connection: Duration
        /// For the work on a leased connection to finish.
        public var work: Duration

        public init(connection: Duration, work: Duration) {
            self.connection = connection
            self.work = work
        }

        /// Fail fast: a request waits 5 s for a connection and 15 s for its work.
        public static let standard = WaitLimits(connection: .seconds(5), work: .seconds(15))
    }

    /// - Parameters:
    ///   - nodeName: the connections' `application_name`: the node a message notification
    ///     names as its writer (see ``ClusterLink``), and what `pg_stat_activity` shows.
    ///   - listenLocation: where the cluster's LISTEN connection goes, when not to `location`:
    ///     LISTEN needs a session of its own, which a transaction-pooling pooler does not keep.
    ///   - replicas: streaming replicas of `location` to read from, each with a pool of
    ///     `maxConnections`, and the most lag a replica in rotation may have.
    public init(
        location: PostgresLocation, listenLocation: PostgresLocation? = nil,
        replicas: (locations: [PostgresLocation], maxLag: Duration) = ([], .seconds(1)), maxConnections: Int,
        nodeName: String = "chat-server", waitLimits: WaitLimits = .standard, metrics: ChatMetrics = .disabled,
        logger: Logger
    ) throws {
        let startup = [("application_name", nodeName)]
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: Self.poolTLS(location.tls))
        configuration.options.maximumConnections = maxConnections
        configuration.options.additionalStartupParameters = startup
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.replicas = Self.replicaSet(
            replicas, maxConnections: maxConnections, startup: startup, metrics: metrics, logger: logger)
        self.connectionConfiguration = try Self.connectionConfiguration(location, startup: startup)
        self.separateListenConfiguration = try listenLocation.map {
            try Self.connectionConfiguration($0, startup: startup)
        }
        self.waitLimits = waitLimits
        self.metrics = metrics
        self.logger = logger
    }

    /// A pool for each replica, as the primary's; nil without replicas.
    private static func replicaSet(
        _ replicas: (locations: [PostgresLocation], maxLag: Duration), maxConnections: Int,
        startup: [(String, String)], metrics: ChatMetrics, logger: Logger
    ) -> ReplicaSet? {
        guard !replicas.locations.isEmpty else { return nil }
        let pools = replicas.locations.map { replica in
            var configuration = PostgresClient.Configuration(
                host: replica.host, port: replica.port, username: replica.username, password: replica.password,
                database: replica.database, tls: poolTLS(replica.tls))
            configuration.options.maximumConnections = maxConnections
            configuration.options.additionalStartupParameters = startup
            return ReplicaSet.Replica(
                name: "\(replica.host):\(replica.port)",
                client: PostgresClient(configuration: configuration, backgroundLogger: logger), factory: metrics.factory
            )
        }
        return ReplicaSet(replicas: pools, settings: .init(maxLag: replicas.maxLag), factory: metrics.factory)
    }

    /// The pool's TLS for `mode`, as libpq's `sslmode` means it.
    private static func poolTLS(_ mode: PostgresLocation.TLSMode) -> PostgresClient.Configuration.TLS {
        switch mode {
        case .disable: .disable
        case .prefer: .prefer(unverifiedTLS)
        case .require: .require(unverifiedTLS)
        case .verifyFull: .require(.makeClientConfiguration())
        }
    }

    /// The settings of a connection of its own to `location`.
    private static func connectionConfiguration(
        _ location: PostgresLocation, startup: [(String, String)]
    ) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS =
            switch location.tls {
            case .disable: .disable
            case .prefer: .prefer(try NIOSSLContext(configuration: unverifiedTLS))
            case .require: .require(try NIOSSLContext(configuration: unverifiedTLS))
            case .verifyFull: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: tls)
        configuration.options.additionalStartupParameters = startup
        return configuration
    }

    /// TLS without certificate verification, for `prefer` and `require`.
    private static var unverifiedTLS: TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        return tls
    }

    /// Runs the connection pools, and the replicas' checks, until graceful shutdown.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for replica in replicas?.replicas ?? [] {
                group.addTask { await replica.client.run() }
            }
            group.addTask { await self.checkReplicas() }
            await client.run()
            group.cancelAll()
        }
    }

    /// Connects once to the database, and to the LISTEN URL when that is another: on
    /// connections of their own, since the pool would retry a failing connection forever
    /// without telling the caller why.
    public func checkConnection() async throws {
        for configuration in [connectionConfiguration] + [separateListenConfiguration].compactMap({ $0 }) {
            try await check(configuration)
        }
    }

    private func check(_ configuration: PostgresConnection.Configuration) async throws {
        let server = "PostgreSQL at \(configuration.host ?? "?"):\(configuration.port ?? 0)"
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            do {
                try await connection.query("SELECT 1", logger: logger)
                try await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch let error as PSQLError {
            throw StorageError.unreachable("\(server): \(error.serverInfo?[.message] ?? "\(error.code)")")
        } catch {
            throw StorageError.unreachable("\(server): \(error)")
        }
    }

    // MARK: Schema

    public func migrationStatus() async throws -> [MigrationStatus] {
        let migrations = try SQLDialect.postgres.migrations()
        let applied = try await withConnection { try await Self.appliedMigrations(on: $0, logger: self.logger) }
        return migrations.status(applied: applied)
    }

    @discardableResult
    public func migrateUp() async throws -> [Migration] {
        let migrations = try SQLDialect.postgres.migrations()
        return try await migrationTransaction { connection, applied in
            let pending = try migrations.pending(after: applied)
            for migration in pending {
                for statement in Migration.statements(in: migration.upSQL) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                }
                try await connection.query(
                    """
                    INSERT INTO schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """, logger: self.logger)
            }
            return pending
        }
    }

    @discardableResult
    public func migrateDown(steps: Int) async throws -> [Migration] {
        let migrations = try SQLDialect.postgres.migrations()
        return try await migrationTransaction { connection, applied in
            let reverted = try migrations.newestApplied(steps, of: applied)
            for migration in reverted {
                for statement in Migration.statements(in: migration.downSQL) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                }
                try await connection.query(
                    "DELETE FROM schema_migrations WHERE version = \(migration.version)", logger: self.logger)
            }
            return reverted
        }
    }

    /// Runs `body` in a transaction holding the migration advisory lock, with the applied
    /// migrations read after the lock was taken.
    private func migrationTransaction(
        _ body: @escaping @Sendable (PostgresConnection, [AppliedMigration]) async throws -> [Migration]
    ) async throws -> [Migration] {
        try await transaction(limited: false) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: self.logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    INTEGER PRIMARY KEY,
                    name       TEXT NOT NULL,
                    checksum   TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """, logger: self.logger)
            return try await body(connection, try await Self.appliedMigrations(on: connection, logger: self.logger))
        }
    }

    private static func appliedMigrations(
        on connection: PostgresConnection, logger: Logger
    ) async throws
        -> [AppliedMigration]
    {
        let exists = try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
            .decode(Bool.self).collectAll()
        guard exists.first == true else { return [] }
        return try await connection.query(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version", logger: logger
        ).decode((Int, String, String, Date).self).collectAll().map {
            AppliedMigration(version: $0.0, name: $0.1, checksum: $0.2, appliedAt: $0.3)
        }
    }

    // MARK: Users

    private typealias UserRow = (Int64, String, String, Bool, Date)

    public func createUser(_ user: NewUser) async throws -> User {
        let rows = try await write(
            """
            INSERT INTO users (name, name_key, email, email_key, password_hash)
            VALUES (\(user.name), \(user.nameKey), \(user.email), \(user.emailKey), \(user.passwordHash))
            RETURNING id, name, email, is_admin, created_at
            """, as: UserRow.self)
        guard let row = rows.first else { throw StorageError.unexpected("INSERT INTO users returned no row") }
        return Self.user(row)
    }

    public func credentials(loginKey: String) async throws -> UserCredentials? {
        try await fetch(
            """
            SELECT id, name, email, is_admin, created_at, password_hash FROM users
            WHERE name_key = \(loginKey) OR email_key = \(loginKey)
            LIMIT 1
            """, as: (Int64, String, String, Bool, Date, String).self
        ).first.map { UserCredentials(user: Self.user(($0.0, $0.1, $0.2, $0.3, $0.4)), passwordHash: $0.5) }
    }

    public func updatePasswordHash(_ hash: String, for user: UserID) async throws {
        try await execute("UPDATE users SET password_hash = \(hash) WHERE id = \(user.rawValue)")
    }

    public func changePassword(_ hash: String, for user: UserID, sessionsValidFrom: Date) async throws {
        try await execute(
            """
            UPDATE users SET password_hash = \(hash), sessions_valid_from = \(sessionsValidFrom)
            WHERE id = \(user.rawValue)
            """)
    }

    /// With replicas, also notes the primary's WAL position in the request's ``ReadScope``: the
    /// check is the request's first statement, so everything the client had seen is before it.
    public func sessionUser(_ user: UserID, tokenID: String, issuedAt: Date) async throws -> User? {
        let scope = replicas == nil ? nil : ReadScope.current
        let position = scope == nil ? "0::int8" : "(pg_current_wal_insert_lsn() - '0/0')::int8"
        guard
            let row = try await fetch(
                """
                SELECT id, name, email, is_admin, created_at, \(unescaped: position) FROM users
                WHERE id = \(user.rawValue) AND (sessions_valid_from IS NULL OR sessions_valid_from <= \(issuedAt))
                  AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE token_id = \(tokenID))
                """, as: (Int64, String, String, Bool, Date, Int64).self
            ).first
        else { return nil }
        scope?.notePrimaryPosition(row.5)
        return Self.user((row.0, row.1, row.2, row.3, row.4))
    }

    public func revokeToken(_ tokenID: String, of user: UserID, expiresAt: Date) async throws {
        try await execute(
            """
            WITH forget_expired AS (DELETE FROM revoked_tokens WHERE expires_at < now())
            INSERT INTO revoked_tokens (token_id, user_id, expires_at)
            VALUES (\(tokenID), \(user.rawValue), \(expiresAt))
            ON CONFLICT (token_id) DO NOTHING
            """)
    }

    /// From a replica only when it is known to have replayed the request's position: users
    /// have no positions of their own to compare (``readIfReplayed(_:)``).
    public func users(nameKeyPrefix: String, limit: Int) async throws -> [User] {
        // name_key uses the "C" collation, so a prefix is exactly a range of the unique index.
        let upperBound = nameKeyPrefix + "\u{10FFFF}"
        let query: PostgresQuery = """
            SELECT id, name, email, is_admin, created_at FROM users
            WHERE name_key >= \(nameKeyPrefix) AND name_key < \(upperBound)
            ORDER BY name_key
            LIMIT \(limit)
            """
        return try await readIfReplayed { connection in
            try await connection.query(query, logger: self.logger).decode(UserRow.self).collectAll()
        }.map(Self.user)
    }

    public func user(_ id: UserID) async throws -> User? {
        try await fetch(
            "SELECT id, name, email, is_admin, created_at FROM users WHERE id = \(id.rawValue)", as: UserRow.self
        ).first.map(Self.user)
    }

    public func setAdmin(_ isAdmin: Bool, nameKey: String) async throws -> User? {
        try await write(
            """
            UPDATE users SET is_admin = \(isAdmin) WHERE name_key = \(nameKey)
            RETURNING id, name, email, is_admin, created_at
            """, as: UserRow.self
        ).first.map(Self.user)
    }

    private static func user(_ row: UserRow) -> User {
        User(id: UserID(row.0), name: row.1, email: row.2, isAdmin: row.3, createdAt: row.4)
    }

    // MARK: Chats

    private typealias ChatRow = (Int64, String, String, Int64, Date, Int64, Int64)

    public func createChat(name: String, type: ChatType, creator: UserID) async throws -> Chat {
        let rows = try await write(
            """
            WITH chat AS (
                INSERT INTO chats (name, chat_type) VALUES (\(name), \(type.rawValue))
                RETURNING id, name, chat_type, created_at, last_seq, last_update
            ), chat_group AS (
                INSERT INTO groups (chat_id, creator_id) SELECT id, \(creator.rawValue) FROM chat
                RETURNING chat_id, creator_id
            ), first_member AS (
                INSERT INTO group_members (chat_id, user_id) SELECT chat_id, creator_id FROM chat_group
            )
            SELECT chat.id, chat.name, chat.chat_type, chat_group.creator_id, chat.created_at, chat.last_seq,
                   chat.last_update
            FROM chat JOIN chat_group ON chat_group.chat_id = chat.id
            """, as: ChatRow.self)
        guard let row = rows.first else { throw StorageError.unexpected("INSERT INTO chats returned no row") }
        return try Self.chat(row)
    }

    public func chat(_ id: ChatID, member: UserID) async throws -> Chat? {
        try await fetch(
            """
            SELECT c.id, c.name, c.chat_type, g.creator_id, c.created_at, c.last_seq, c.last_update
            FROM chats c
            JOIN groups g ON g.chat_id = c.id
            JOIN group_members m ON m.chat_id = c.id AND m.user_id = \(member.rawValue)
            WHERE c.id = \(id.rawValue)
            """, as: ChatRow.self
        ).first.map(Self.chat)
    }

    public func members(of chat: ChatID) async throws -> [ChatMember] {
        try await fetch(Self.membersQuery(chat), as: MemberRow.self).map(Self.member)
    }

    private typealias MemberRow = (Int64, String, Int64)

    private static func membersQuery(_ chat: ChatID) -> PostgresQuery {
        """
        SELECT m.user_id, u.name, m.read_seq
        FROM group_members m JOIN users u ON u.id = m.user_id
        WHERE m.chat_id = \(chat.rawValue)
        ORDER BY m.joined_at, m.user_id
        """
    }

    private static func member(_ row: MemberRow) -> ChatMember {
        ChatMember(userID: UserID(row.0), name: row.1, readSeq: row.2)
    }

    public func addMember(_ user: UserID, to chat: ChatID, by actor: UserID?) async throws {
        try await transaction { connection in
            // Locking the chat row serialises concurrent adds (and sends) to this chat, and the
            // count below runs in a later statement, so it sees every add committed before us.
            let locked = try await connection.query(
                "SELECT chat_type, last_seq FROM chats WHERE id = \(chat.rawValue) FOR UPDATE", logger: self.logger
            ).decode((String, Int64).self).collectAll()
            guard let (typeName, lastSeq) = locked.first else { throw ChatError.chatNotFound }
            let facts = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM users WHERE id = \(user.rawValue)),
                       EXISTS (SELECT 1 FROM group_members WHERE chat_id = \(chat.rawValue) AND user_id = \(user.rawValue)),
                       (SELECT count(*) FROM group_members WHERE chat_id = \(chat.rawValue))
                """, logger: self.logger
            ).decode((Bool, Bool, Int64).self).collectAll()
            guard let (userExists, isMember, memberCount) = facts.first else {
                throw StorageError.unexpected("membership facts returned no row")
            }
            guard userExists else { throw ChatError.userNotFound }
            guard !isMember else { throw ChatError.alreadyMember }
            if try Self.chatType(typeName) == .private, memberCount >= 2 { throw ChatError.privateChatFull }
            // New members start with everything so far read, so history does not turn unread.
            try await connection.query(
                """
                WITH added AS (
                    INSERT INTO group_members (chat_id, user_id, read_seq)
                    VALUES (\(chat.rawValue), \(user.rawValue), \(lastSeq))
                )
                INSERT INTO membership_events (chat_id, kind, user_id, actor_id, after_seq)
                VALUES (\(chat.rawValue), 'added', \(user.rawValue), \(actor?.rawValue), \(lastSeq))
                """, logger: self.logger)
        }
    }

    public func removeMember(_ user: UserID, from chat: ChatID, by actor: UserID?) async throws {
        // One statement: the event is recorded exactly when a membership was deleted. Its
        // position is the chat's end as this statement sees it (without locking the chat
        // row: a send committing at the same moment may land on either side of it).
        let removed = try await write(
            """
            WITH removed AS (
                DELETE FROM group_members WHERE chat_id = \(chat.rawValue) AND user_id = \(user.rawValue)
                RETURNING chat_id, user_id
            )
            INSERT INTO membership_events (chat_id, kind, user_id, actor_id, after_seq)
            SELECT removed.chat_id, 'removed', removed.user_id, \(actor?.rawValue), chats.last_seq
            FROM removed JOIN chats ON chats.id = removed.chat_id
            RETURNING user_id
            """, as: Int64.self)
        guard !removed.isEmpty else { throw ChatError.notAMember }
    }

    public func leaveChat(_ user: UserID, chat: ChatID) async throws -> UserID? {
        try await transaction { connection in
            // The chat row's lock serialises leaves (and adds and sends) in this chat, and the
            // statement below runs after it: its snapshot holds every leave committed before
            // ours, so two members leaving at once cannot pass the creator to each other.
            let locked = try await connection.query(
                "SELECT last_seq FROM chats WHERE id = \(chat.rawValue) FOR UPDATE", logger: self.logger
            ).decode(Int64.self).collectAll()
            guard let lastSeq = locked.first else { throw ChatError.chatNotFound }
            // One statement: the membership ends, the event is recorded, and when the leaver
            // created the chat, the member who joined earliest (as the member list orders
            // them) becomes its creator. Its parts share one snapshot, so the successor is
            // chosen among the others by excluding the leaver, not by seeing the delete.
            let rows = try await connection.query(
                """
                WITH removed AS (
                    DELETE FROM group_members WHERE chat_id = \(chat.rawValue) AND user_id = \(user.rawValue)
                    RETURNING user_id
                ), recorded AS (
                    INSERT INTO membership_events (chat_id, kind, user_id, actor_id, after_seq)
                    SELECT \(chat.rawValue), 'removed', user_id, user_id, \(lastSeq) FROM removed
                ), successor AS (
                    SELECT user_id FROM group_members
                    WHERE chat_id = \(chat.rawValue) AND user_id <> \(user.rawValue)
                    ORDER BY joined_at, user_id
                    LIMIT 1
                ), promoted AS (
                    UPDATE groups SET creator_id = successor.user_id
                    FROM successor, removed
                    WHERE groups.chat_id = \(chat.rawValue) AND groups.creator_id = removed.user_id
                    RETURNING groups.creator_id
                )
                SELECT (SELECT count(*) FROM removed), (SELECT creator_id FROM promoted)
                """, logger: self.logger
            ).decode((Int64, Int64?).self).collectAll()
            guard let (removed, newCreator) = rows.first, removed == 1 else { throw ChatError.chatNotFound }
            return newCreator.map(UserID.init)
        }
    }

    public func membershipEvents(
        in chat: ChatID, afterSeqs: ClosedRange<Int64>, limit: Int
    ) async throws
        -> [MembershipEvent]
    {
        try await fetch(
            """
            SELECT e.id, e.kind, e.user_id, subject.name, e.actor_id, actor.name, e.after_seq, e.created_at
            FROM membership_events e
            JOIN users subject ON subject.id = e.user_id
            LEFT JOIN users actor ON actor.id = e.actor_id
            WHERE e.chat_id = \(chat.rawValue) AND e.after_seq BETWEEN \(afterSeqs.lowerBound) AND \(afterSeqs.upperBound)
            ORDER BY e.id
            LIMIT \(limit)
            """, as: (Int64, String, Int64, String, Int64?, String?, Int64, Date).self, ofChat: chat
        ) { primary in ChatPositions(lastSeq: 0, lastUpdate: 0, lastMembershipEvent: primary.lastMembershipEvent) }
        .map { row in
            guard let kind = MembershipEvent.Kind(rawValue: row.1) else {
                throw StorageError.unexpected("unknown membership event kind \(row.1)")
            }
            return MembershipEvent(
                id: row.0, chatID: chat, kind: kind, user: UserID(row.2), userName: row.3,
                actor: row.4.map(UserID.init),
                actorName: row.5, afterSeq: row.6, createdAt: row.7)
        }
    }

    public func chatSummaries(for user: UserID) async throws -> [ChatSummary] {
        let rows = try await fetch(
            ofChatsOf: user,
            """
            SELECT c.id, c.name, c.chat_type, g.creator_id, c.created_at, c.last_seq, c.last_update, me.read_seq,
                   m.id, m.sender_id, m.client_id, m.text, m.created_at,
                   (SELECT min(o.read_seq) FROM group_members o
                    WHERE o.chat_id = c.id AND o.user_id <> m.sender_id),
                   sender.name, m.reply_to, m.edited_at, m.deleted, m.update_seq
            FROM group_members me
            JOIN chats c ON c.id = me.chat_id
            JOIN groups g ON g.chat_id = c.id
            LEFT JOIN messages m ON m.chat_id = c.id AND m.seq = c.last_seq
            LEFT JOIN users sender ON sender.id = m.sender_id
            WHERE me.user_id = \(user.rawValue)
            ORDER BY COALESCE(m.created_at, c.created_at) DESC, c.id DESC
            """,
            as: (
                Int64, String, String, Int64, Date, Int64, Int64, Int64, Int64?, Int64?, String?, String?, Date?,
                Int64?, String?, Int64?, Date?, Bool?, Int64?
            ).self
        )
        return try rows.map { row in
            let chat = try Self.chat((row.0, row.1, row.2, row.3, row.4, row.5, row.6))
            var lastMessage: Message?
            if let id = row.8, let senderID = row.9, let text = row.11, let sentAt = row.12 {
                lastMessage = Message(
                    id: MessageID(id), chatID: chat.id, seq: chat.lastSeq, senderID: UserID(senderID), clientID: row.10,
                    text: text, createdAt: sentAt, replyTo: row.15.map(MessageID.init), editedAt: row.16,
                    deleted: row.17 ?? false, updateSeq: row.18 ?? 0)
            }
            return ChatSummary(
                chat: chat, readSeq: row.7, lastMessage: lastMessage, lastSenderName: row.14, lowestOtherReadSeq: row.13
            )
        }
    }

    public func chatDetails(for user: UserID) async throws -> [ChatDetails] {
        let chats = try await fetch(
            """
            SELECT c.id, c.name, c.chat_type, g.creator_id, c.created_at, c.last_seq, c.last_update
            FROM group_members me JOIN chats c ON c.id = me.chat_id JOIN groups g ON g.chat_id = c.id
            WHERE me.user_id = \(user.rawValue)
            ORDER BY c.id
            """, as: ChatRow.self
        ).map(Self.chat)
        let members = try await fetch(
            """
            SELECT m.chat_id, m.user_id, u.name, m.read_seq
            FROM group_members m JOIN users u ON u.id = m.user_id
            WHERE m.chat_id IN (SELECT chat_id FROM group_members WHERE user_id = \(user.rawValue))
            ORDER BY m.chat_id, m.joined_at, m.user_id
            """, as: (Int64, Int64, String, Int64).self)
        let byChat = Dictionary(grouping: members) { ChatID($0.0) }
        return chats.map { chat in
            ChatDetails(
                chat: chat,
                members: (byChat[chat.id] ?? []).map { ChatMember(userID: UserID($0.1), name: $0.2, readSeq: $0.3) })
        }
    }

    public func advanceReadMarker(of user: UserID, in chat: ChatID, to seq: Int64) async throws -> Int64? {
        let rows = try await write(
            """
            WITH target AS (
                SELECT LEAST(\(seq), last_seq) AS seq FROM chats WHERE id = \(chat.rawValue)
            ), moved AS (
                UPDATE group_members SET read_seq = target.seq FROM target
                WHERE chat_id = \(chat.rawValue) AND user_id = \(user.rawValue) AND read_seq < target.seq
                RETURNING read_seq
            )
            SELECT (SELECT read_seq FROM moved),
                   EXISTS (SELECT 1 FROM group_members WHERE chat_id = \(chat.rawValue) AND user_id = \(user.rawValue))
            """, as: (Int64?, Bool).self)
        guard let (moved, isMember) = rows.first, isMember else { throw ChatError.notAMember }
        return moved
    }

    private static func chat(_ row: ChatRow) throws -> Chat {
        Chat(
            id: ChatID(row.0), name: row.1, type: try chatType(row.2), creatorID: UserID(row.3), createdAt: row.4,
            lastSeq: row.5, lastUpdate: row.6)
    }

    private static func chatType(_ name: String) throws -> ChatType {
        guard let type = ChatType(rawValue: name) else { throw StorageError.corruptRow("chat_type \(name)") }
        return type
    }

    // MARK: Messages

    private typealias MessageRow = (Int64, Int64, Int64, Int64, String?, String, Date, Int64?, Date?, Bool, Int64)
    /// The columns of a ``MessageRow``, in order.
    private static let messageColumns = """
        id, chat_id, seq, sender_id, client_id, text, created_at, reply_to, edited_at, deleted, update_seq
        """

    public func appendMessages(_ messages: [NewMessage]) async throws -> [Result<AppendedMessage, ChatError>] {
        guard let chat = messages.first?.chatID else { return [] }
        // One statement: an earlier message with the same client id wins; the rest from
        // members take the next seqs under the chat row's lock, in order, and each sender's
        // read marker follows their last one. A racing duplicate fails the unique constraint,
        // which rolls the whole statement back: no gap. Client ids travel as text with ''
        // for none (client ids are never empty), replies as ids with 0 for none.
        let query: PostgresQuery = """
            WITH input AS (
                SELECT * FROM unnest(
                    \(messages.map(\.senderID.rawValue))::bigint[],
                    \(messages.map { $0.clientID ?? "" })::text[],
                    \(messages.map(\.text))::text[],
                    \(messages.map { $0.replyTo?.rawValue ?? 0 })::bigint[]
                ) WITH ORDINALITY AS input(sender_id, client_id, text, reply_to, position)
            ), existing AS (
                SELECT input.position, messages.id, messages.chat_id, messages.seq, messages.sender_id,
                       messages.client_id, messages.text, messages.created_at, messages.reply_to,
                       messages.edited_at, messages.deleted, messages.update_seq
                FROM input JOIN messages
                  ON messages.sender_id = input.sender_id AND messages.client_id = NULLIF(input.client_id, '')
            ), fresh AS (
                SELECT input.position, input.sender_id, NULLIF(input.client_id, '') AS client_id, input.text,
                       NULLIF(input.reply_to, 0) AS reply_to, row_number() OVER (ORDER BY input.position) AS rank
                FROM input
                WHERE input.position NOT IN (SELECT position FROM existing)
                  AND input.sender_id IN (SELECT user_id FROM group_members WHERE chat_id = \(chat.rawValue))
            ), next AS (
                UPDATE chats SET last_seq = last_seq + (SELECT count(*) FROM fresh)
                WHERE id = \(chat.rawValue) AND EXISTS (SELECT 1 FROM fresh)
                RETURNING last_seq - (SELECT count(*) FROM fresh) AS base_seq
            ), inserted AS (
                INSERT INTO messages (chat_id, seq, sender_id, client_id, text, reply_to)
                SELECT \(chat.rawValue), next.base_seq + fresh.rank, fresh.sender_id, fresh.client_id, fresh.text,
                       fresh.reply_to
                FROM fresh CROSS JOIN next
                RETURNING \(unescaped: Self.messageColumns)
            ), sender_markers AS (
                UPDATE group_members SET read_seq = latest.seq
                FROM (SELECT sender_id, max(seq) AS seq FROM inserted GROUP BY sender_id) AS latest
                WHERE group_members.chat_id = \(chat.rawValue) AND group_members.user_id = latest.sender_id
            )
            SELECT false, fresh.position, inserted.*
            FROM inserted CROSS JOIN next JOIN fresh ON fresh.rank = inserted.seq - next.base_seq
            UNION ALL
            SELECT true, existing.* FROM existing
            """
        typealias Row = (Bool, Int64, Int64, Int64, Int64, Int64, String?, String, Date, Int64?, Date?, Bool, Int64)
        let rows: [Row]
        ReadScope.current?.writes()
        do {
            rows = try await withConnection { connection in
                let rows = try await connection.query(query, logger: self.logger).decode(Row.self).collectAll()
                try await self.awaitCommit(on: connection)
                return rows
            }
        } catch let error as PSQLError where Self.isUniqueViolation(error, constraint: "messages_sender_client_unique")
        {
            // One of these client ids was stored meanwhile (by a racing device, or into
            // another chat): one at a time, only that message turns into a duplicate.
            if messages.count > 1 {
                var results: [Result<AppendedMessage, ChatError>] = []
                for message in messages { results += try await appendMessages([message]) }
                return results
            }
            guard let clientID = messages[0].clientID,
                let original = try await messageBy(sender: messages[0].senderID, clientID: clientID)
            else { throw StorageError.unexpected("duplicate client id without an original message") }
            return [.success(AppendedMessage(message: original, duplicate: true))]
        } catch {
            throw mapError(error)
        }
        var results = [Result<AppendedMessage, ChatError>](repeating: .failure(.notAMember), count: messages.count)
        for row in rows {
            let message = Self.message(
                (row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11, row.12))
            results[Int(row.1) - 1] = .success(AppendedMessage(message: message, duplicate: row.0))
        }
        return results
    }

    private func messageBy(sender: UserID, clientID: String) async throws -> Message? {
        try await fetch(
            """
            SELECT \(unescaped: Self.messageColumns) FROM messages
            WHERE sender_id = \(sender.rawValue) AND client_id = \(clientID)
            """, as: MessageRow.self
        ).first.map(Self.message)
    }

    public func messages(in chat: ChatID, _ query: HistoryQuery) async throws -> [Message] {
        let (sql, lastOfPage) = Self.page(of: chat, query)
        return try await fetch(sql, as: MessageRow.self, ofChat: chat) { primary in
            ChatPositions(lastSeq: min(primary.lastSeq, lastOfPage), lastUpdate: primary.lastUpdate)
        }.map(Self.message)
    }

    /// On one connection, so that a replica serves both or neither: a replica must have the
    /// page, every edit, and the members and read markers as the primary has them.
    public func historyPage(
        in chat: ChatID, _ query: HistoryQuery
    ) async throws -> (messages: [Message], members: [ChatMember]) {
        let (sql, lastOfPage) = Self.page(of: chat, query)
        let (messages, members) = try await readChat(chat) { primary in
            ChatPositions(
                lastSeq: min(primary.lastSeq, lastOfPage), lastUpdate: primary.lastUpdate,
                lastMembershipEvent: primary.lastMembershipEvent, readMarkers: primary.readMarkers)
        } read: { connection in
            let messages = try await connection.query(sql, logger: self.logger).decode(MessageRow.self).collectAll()
            let members = try await connection.query(Self.membersQuery(chat), logger: self.logger)
                .decode(MemberRow.self).collectAll()
            return (messages, members)
        }
        return (messages.map(Self.message), members.map(Self.member))
    }

    /// A history page's statement, and the last `seq` it can return.
    private static func page(of chat: ChatID, _ query: HistoryQuery) -> (PostgresQuery, lastSeq: Int64) {
        switch query {
        case .offset(let seq, let limit), .after(let seq, let limit):
            (
                """
                SELECT \(unescaped: messageColumns) FROM messages
                WHERE chat_id = \(chat.rawValue) AND seq > \(seq)
                ORDER BY seq LIMIT \(limit)
                """, seq.clampedAdding(limit)
            )
        case .before(let seq, let limit):
            (
                """
                SELECT * FROM (
                    SELECT \(unescaped: messageColumns) FROM messages
                    WHERE chat_id = \(chat.rawValue) AND seq < \(seq)
                    ORDER BY seq DESC LIMIT \(limit)
                ) AS page ORDER BY seq
                """, seq - 1
            )
        }
    }

    /// One statement, so one snapshot: the members are read with the messages.
    public func messagesAndMembers(
        in chat: ChatID, after afterSeq: Int64, limit: Int
    ) async throws -> (messages: [Message], members: Set<UserID>) {
        // The members come as a row of their own, its message columns null. A replica must have
        // the chat's membership as the primary has it.
        let rows = try await fetch(
            """
            SELECT ARRAY(SELECT user_id FROM group_members WHERE chat_id = \(chat.rawValue)), NULL, NULL, NULL,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            UNION ALL
            (SELECT NULL, \(unescaped: Self.messageColumns) FROM messages
             WHERE chat_id = \(chat.rawValue) AND seq > \(afterSeq) ORDER BY seq LIMIT \(limit))
            """,
            as: ([Int64]?, Int64?, Int64?, Int64?, Int64?, String?, String?, Date?, Int64?, Date?, Bool?, Int64?).self,
            ofChat: chat
        ) { primary in
            ChatPositions(
                lastSeq: min(primary.lastSeq, afterSeq.clampedAdding(limit)), lastUpdate: primary.lastUpdate,
                lastMembershipEvent: primary.lastMembershipEvent)
        }
        var members: Set<UserID> = []
        var messages: [Message] = []
        for row in rows {
            if let ids = row.0 {
                members = Set(ids.map(UserID.init))
            } else if let id = row.1, let chat = row.2, let seq = row.3, let sender = row.4, let text = row.6,
                let createdAt = row.7, let deleted = row.10, let updateSeq = row.11
            {
                messages.append(
                    Self.message((id, chat, seq, sender, row.5, text, createdAt, row.8, row.9, deleted, updateSeq)))
            }
        }
        // UNION ALL keeps each part's order in practice; the standard does not promise it.
        messages.sort { $0.seq < $1.seq }
        return (messages, members)
    }

    public func message(_ id: MessageID) async throws -> Message? {
        try await fetch(
            "SELECT \(unescaped: Self.messageColumns) FROM messages WHERE id = \(id.rawValue)", as: MessageRow.self
        ).first.map(Self.message)
    }

    public func chats(ofMessages ids: Set<MessageID>) async throws -> [MessageID: ChatID] {
        let rows = try await fetch(
            "SELECT id, chat_id FROM messages WHERE id = ANY(\(ids.map(\.rawValue))::bigint[])", as: (Int64, Int64).self
        )
        return Dictionary(uniqueKeysWithValues: rows.map { (MessageID($0.0), ChatID($0.1)) })
    }

    public func changeMessage(_ id: MessageID, _ change: MessageChange) async throws -> Message? {
        let (text, deletes): (String, Bool) =
            switch change {
            case .edit(let text): (text, false)
            case .delete: ("", true)
            }
        // One statement: the chat row's lock hands out the next update_seq, so a chat's updates
        // commit in update_seq order. The message's own row is checked again once the lock is
        // held (READ COMMITTED re-reads an updated row): a deletion that committed meanwhile
        // wins, and this change is dropped. Its update_seq is then left unused, which nothing
        // minds: updates are read as ranges, not counted.
        let rows = try await write(
            """
            WITH target AS (
                SELECT chat_id FROM messages WHERE id = \(id.rawValue) AND NOT deleted
            ), next AS (
                UPDATE chats SET last_update = last_update + 1 FROM target WHERE chats.id = target.chat_id
                RETURNING last_update
            )
            UPDATE messages SET
                text = \(text),
                deleted = \(deletes),
                edited_at = CASE WHEN \(deletes) THEN edited_at ELSE clock_timestamp() END,
                update_seq = next.last_update
            FROM next
            WHERE messages.id = \(id.rawValue) AND NOT messages.deleted
            RETURNING \(unescaped: Self.messageColumns)
            """, as: MessageRow.self)
        return rows.first.map(Self.message)
    }

    public func updatedMessages(in chat: ChatID, after afterUpdate: Int64, limit: Int) async throws -> [Message] {
        try await fetch(
            """
            SELECT \(unescaped: Self.messageColumns) FROM messages
            WHERE chat_id = \(chat.rawValue) AND update_seq > \(afterUpdate)
            ORDER BY update_seq LIMIT \(limit)
            """, as: MessageRow.self, ofChat: chat
        ) { primary in ChatPositions(lastSeq: primary.lastSeq, lastUpdate: primary.lastUpdate) }
        .map(Self.message)
    }

    public func searchMessages(
        _ words: [String], in scope: SearchScope, before: MessageID?, limit: Int
    ) async throws -> [SearchHit] {
        let query = words.joined(separator: " ")
        let (scopeColumn, scopeID): (String, Int64) =
            switch scope {
            case .chatsOf(let user): ("user_id", user.rawValue)
            case .chat(let chat): ("chat_id", chat.rawValue)
            }
        let headline =
            "StartSel=\(SearchHit.markStart), StopSel=\(SearchHit.markEnd), MaxWords=20, MinWords=8, "
            + "MaxFragments=2, FragmentDelimiter=\" … \""
        // The GIN index on message_search_vector(text) finds every match first, on its own
        // (migration 0007); the chats and the order come after. Joined to the chats directly,
        // the planner scans the index once per chat, or ANDs it with the (chat_id, seq) index
        // over every message of those chats: several times slower. The snippet is stemmed as
        // Russian, or as English when that marks nothing.
        let columns = Self.messageColumns.split(separator: ", ").map { "m.\($0)" }.joined(separator: ", ")
        // An integer, so written into the SQL; without a cursor no condition at all, which the
        // planner could otherwise meet with the primary key's index over every message.
        let older = before.map { "AND id < \($0.rawValue)" } ?? ""
        let rows = try await fetch(
            ofChatsIn: scope,
            """
            WITH found AS MATERIALIZED (
                SELECT id, chat_id FROM messages
                WHERE message_search_vector(text) @@ message_search_query(\(query)) AND NOT deleted
                \(unescaped: older)
            ), page AS (
                SELECT \(unescaped: columns) FROM found JOIN messages m ON m.id = found.id
                WHERE found.chat_id IN (
                    SELECT chat_id FROM group_members WHERE \(unescaped: scopeColumn) = \(scopeID))
                ORDER BY found.id DESC LIMIT \(limit)
            ), marked AS (
                SELECT page.*,
                       ts_headline('russian', text, message_search_query(\(query)), \(headline)) AS russian,
                       ts_headline('english', text, message_search_query(\(query)), \(headline)) AS english
                FROM page
            )
            SELECT \(unescaped: Self.messageColumns),
                   CASE WHEN strpos(russian, \(String(SearchHit.markStart))) > 0 THEN russian ELSE english END
            FROM marked ORDER BY id DESC
            """, as: (Int64, Int64, Int64, Int64, String?, String, Date, Int64?, Date?, Bool, Int64, String).self)
        return rows.map { row in
            SearchHit(
                message: Self.message((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10)),
                snippet: row.11)
        }
    }

    public func refreshStatistics() async throws {
        try await execute("ANALYZE messages")
    }

    public func appendGeneratedMessages(
        _ count: Int, to chat: ChatID, from sender: UserID, words: [String]
    ) async throws -> Int64 {
        guard count >= 1 else { throw ChatError.invalidField("count", "must be at least 1") }
        let count = Int64(count)
        // One statement: the chat row's lock hands out `count` seqs at once and
        // generate_series stores them; the INSERT runs although nothing reads its result.
        let rows = try await write(
            """
            WITH next AS (
                UPDATE chats SET last_seq = last_seq + \(count)
                WHERE id = \(chat.rawValue)
                  AND EXISTS (SELECT 1 FROM group_members
                              WHERE chat_id = \(chat.rawValue) AND user_id = \(sender.rawValue))
                RETURNING last_seq
            ), inserted AS (
                INSERT INTO messages (chat_id, seq, sender_id, text)
                SELECT \(chat.rawValue), seq, \(sender.rawValue),
                       CASE WHEN cardinality(\(words)::text[]) = 0 THEN 'message ' || seq ELSE (
                           SELECT string_agg((\(words)::text[])[1 + ((seq * 7919 + position * 104729)
                               % 4294967291) * 48271 % 2147483647 % cardinality(\(words)::text[])], ' ' ORDER BY position)
                           FROM generate_series(1, \(Int64(generatedWordsPerMessage))) AS position)
                       END
                FROM next, generate_series(next.last_seq - \(count) + 1, next.last_seq) AS seq
            )
            SELECT last_seq FROM next
            """, as: Int64.self)
        guard let last = rows.first else { throw ChatError.notAMember }
        return last
    }

    private static func message(_ row: MessageRow) -> Message {
        Message(
            id: MessageID(row.0), chatID: ChatID(row.1), seq: row.2, senderID: UserID(row.3), clientID: row.4,
            text: row.5, createdAt: row.6, replyTo: row.7.map(MessageID.init), editedAt: row.8, deleted: row.9,
            updateSeq: row.10)
    }

    // MARK: Administration

    public func counts() async throws -> StoreCounts {
        // Sequences are gap-free, so the sum of every chat's last_seq counts all messages
        // without scanning the messages table.
        let rows = try await fetch(
            """
            SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM chats),
                   (SELECT count(*) FROM group_members), (SELECT COALESCE(sum(last_seq), 0)::BIGINT FROM chats)
            """, as: (Int64, Int64, Int64, Int64).self)
        guard let (users, chats, members, messages) = rows.first else {
            throw StorageError.unexpected("counts returned no row")
        }
        return StoreCounts(users: users, chats: chats, members: members, messages: messages)
    }

    public func databaseGeneration() async throws -> String {
        guard let generation = try await fetch("SELECT generation FROM database_generation", as: String.self).first
        else { throw StorageError.unexpected("the database has no generation") }
        return generation
    }

    public func generatedTokenSecret() async throws -> String {
        guard let secret = try await fetch("SELECT secret FROM generated_token_secret", as: String.self).first
        else { throw StorageError.unexpected("the database has no generated token secret") }
        return secret
    }

    public func renewDatabaseGeneration() async throws -> String {
        let rows = try await write(
            """
            UPDATE database_generation SET generation = replace(gen_random_uuid()::text, '-', ''), began_at = now()
            RETURNING generation
            """, as: String.self)
        guard let generation = rows.first else { throw StorageError.unexpected("the database has no generation") }
        return generation
    }

    // MARK: Connections, transactions and errors

    /// Runs a query that reads, and decodes every row.
    func fetch<each Column: PostgresDecodable & Sendable>(
        _ query: PostgresQuery, as types: (repeat each Column).Type
    ) async throws -> [(repeat each Column)] {
        do {
            return try await withConnection { connection in
                try await connection.query(query, logger: self.logger).decode(types).collectAll()
            }
        } catch {
            throw mapError(error)
        }
    }

    /// Runs a statement that writes, and decodes every row once it has committed.
    func write<each Column: PostgresDecodable & Sendable>(
        _ query: PostgresQuery, as types: (repeat each Column).Type
    ) async throws -> [(repeat each Column)] {
        ReadScope.current?.writes()
        do {
            return try await withConnection { connection in
                let rows = try await connection.query(query, logger: self.logger).decode(types).collectAll()
                try await self.awaitCommit(on: connection)
                return rows
            }
        } catch {
            throw mapError(error)
        }
    }

    /// Runs a statement that writes and whose rows, if any, are not needed, until it has
    /// committed.
    func execute(_ query: PostgresQuery) async throws {
        ReadScope.current?.writes()
        do {
            try await withConnection { connection -> Void in
                _ = try await connection.query(query, logger: self.logger).collect()
                try await self.awaitCommit(on: connection)
            }
        } catch {
            throw mapError(error)
        }
    }

    /// Returns once the statement just run on `connection` (outside a transaction block) has
    /// committed. PostgreSQL sends a statement's rows and completion before it commits (at the
    /// protocol's Sync, which ends with ReadyForQuery), and the driver returns on the
    /// completion: a database crash in between would report a write that never happened (the
    /// `pg_ctl restart -m immediate` fault run found acknowledged messages whose seq went to
    /// others). The driver starts a connection's next query only after ReadyForQuery, so one
    /// trivial query proves the commit, one round trip where BEGIN and COMMIT would take two.
    private func awaitCommit(on connection: PostgresConnection) async throws {
        _ = try await connection.query("SELECT 1", logger: logger).collect()
    }

    /// Runs `body` in a transaction on one pooled connection, mapping errors.
    private func transaction<T: Sendable>(
        limited: Bool = true, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    )
        async throws -> T
    {
        ReadScope.current?.writes()
        do {
            return try await withConnection(limited: limited) { connection in
                try await connection.query("BEGIN", logger: self.logger)
                do {
                    let value = try await body(connection)
                    try await connection.query("COMMIT", logger: self.logger)
                    return value
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: self.logger)
                    throw error
                }
            }
        } catch {
            throw mapError(error)
        }
    }

    /// Leases a pooled connection for `body`, giving up with ``ChatError/storageUnavailable``
    /// when none can be had within ``WaitLimits/connection``, when the leased connection
    /// closes before `body` has finished, or when `body` has not finished within
    /// ``WaitLimits/work`` of the lease. The pool itself would wait forever while the database
    /// is down; a request should fail fast instead (and be retried). And a query sent on a
    /// connection the database has closed waits forever, deaf to cancellation (PostgresNIO
    /// 1.33.2; docs/reliability.md has the smallest program that shows it): the lease checks
    /// its connection every ``closedConnectionCheck`` and stops waiting once it is closed,
    /// rather than hold up every later send into its chat. At the work limit the connection is
    /// closed, which ends a query the database never answers and gives the pool its place
    /// back. An abandoned transaction that commits after all does no harm: the sender's retry
    /// with the same client id gets the stored message, and the hub fills the gap. Migrations
    /// pass `limited: false`: they may take long or wait for another node's.
    func withConnection<T: Sendable>(
        on pool: PostgresClient? = nil, limits: WaitLimits? = nil, limited: Bool = true,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    )
        async throws -> T
    {
        let race = LeaseRace<T>()
        let pool = pool ?? client
        let limits = limits ?? waitLimits
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard race.start(continuation) else { return }
                let work = Task {
                    let lease = self.metrics.databaseConnectionRequested()
                    defer { lease.end() }
                    do {
                        let value = try await pool.withConnection { connection in
                            lease.granted()
                            race.leased(connection)
                            if limited { self.giveUpPastWorkLimit(race, limit: limits.work) }
                            self.giveUpWhenClosed(race)
                            return try await body(connection)
                        }
                        race.finish(with: .success(value))
                    } catch {
                        race.finish(with: .failure(error))
                    }
                }
                race.onAbandon { work.cancel() }
                race.schedule(.limit, on: NIOSingletons.posixEventLoopGroup.any(), in: limits.connection) {
                    guard race.connection == nil, self.giveUp(race) else { return }
                    self.logger.warning("No database connection in time", metadata: ["limit": "\(limits.connection)"])
                }
            }
        } onCancel: {
            race.finish(with: .failure(CancellationError()))
        }
    }

    /// Ends `race` with ``ChatError/storageUnavailable`` when its work has not finished within
    /// `limit`, and closes its connection: the query may never complete (see `withConnection`),
    /// and closing the connection fails it, so the pool replaces the connection instead of
    /// keeping it leased to a task that waits forever.
    private func giveUpPastWorkLimit<T>(_ race: LeaseRace<T>, limit: Duration) {
        race.schedule(.limit, on: NIOSingletons.posixEventLoopGroup.any(), in: limit) {
            let connection = race.connection
            guard self.giveUp(race) else { return }
            self.logger.error(
                "PostgreSQL did not answer in time; closing its connection", metadata: ["limit": "\(limit)"])
            connection?.close().whenFailure { _ in }
        }
    }

    /// How often a lease checks that its connection is still open.
    static let closedConnectionCheck = Duration.milliseconds(200)

    /// Ends `race` with ``ChatError/storageUnavailable`` once its connection is closed (checked
    /// every ``closedConnectionCheck`` until the race is over): no query on it can end now.
    private func giveUpWhenClosed<T>(_ race: LeaseRace<T>) {
        race.schedule(.closedCheck, on: NIOSingletons.posixEventLoopGroup.any(), in: Self.closedConnectionCheck) {
            guard race.connection?.isClosed == true else { return self.giveUpWhenClosed(race) }
            if self.giveUp(race) {
                self.logger.error("PostgreSQL closed the connection of a call under way; giving up on it")
            }
        }
    }

    /// Ends `race` with ``ChatError/storageUnavailable``; returns whether this ended it.
    @discardableResult
    private func giveUp<T>(_ race: LeaseRace<T>) -> Bool {
        guard race.finish(with: .failure(ChatError.storageUnavailable)) else { return false }
        metrics.databaseError()
        return true
    }

    func mapError(_ error: any Error) -> any Error {
        guard let error = error as? PSQLError else { return error }
        if Self.isUniqueViolation(error, constraint: "users_name_key_unique") { return ChatError.nameTaken }
        if Self.isUniqueViolation(error, constraint: "users_email_key_unique") { return ChatError.emailTaken }
        metrics.databaseError()
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
            logger.error("PostgreSQL unavailable", metadata: ["error": "\(Self.describe(error))"])
            return ChatError.storageUnavailable
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            // Class 08: connection exceptions; 57P0x: shutdown or crash; 53xxx: out of resources.
            if state.hasPrefix("08") || state.hasPrefix("57P0") || state.hasPrefix("53") {
                logger.error("PostgreSQL unavailable", metadata: ["sqlstate": "\(state)"])
                return ChatError.storageUnavailable
            }
            return StorageError.unexpected(Self.describe(error))
        default:
            return StorageError.unexpected(Self.describe(error))
        }
    }

    /// What the log needs to know about an error, without the bound values (message texts,
    /// password hashes) that PSQLError's own description would print.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        var parts = ["PSQLError \(error.code)"]
        if let state = error.serverInfo?[.sqlState] { parts.append("sqlstate \(state)") }
        if let message = error.serverInfo?[.message] { parts.append(message) }
        if let constraint = error.serverInfo?[.constraintName] { parts.append("constraint \(constraint)") }
        if let sql = error.query?.sql {
            parts.append("in: \(sql.split(whereSeparator: \.isNewline).joined(separator: " "))")
        }
        return parts.joined(separator: "; ")
    }

    private static func isUniqueViolation(_ error: PSQLError, constraint: String) -> Bool {
        error.code == .server && error.serverInfo?[.sqlState] == "23505"
            && error.serverInfo?[.constraintName] == constraint
    }
}

/// One lease's work racing its time limits and its connection's close: whichever ends first
/// resumes the caller, once. The work is cancelled when it loses, and the pending timers when
/// the work wins.
private final class LeaseRace<T: Sendable>: Sendable {
    /// What a scheduled action is for; each has one pending at a time.
    enum Timer {
        /// The connection limit, then the work limit.
        case limit
        /// The next check that the leased connection is open.
        case closedCheck
    }

    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var finished = false
        var connection: PostgresConnection?
        var timers: (limit: Scheduled<Void>?, closedCheck: Scheduled<Void>?) = (nil, nil)
        var abandon: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    /// The connection leased for the work, while the race runs.
    var connection: PostgresConnection? { state.withLock { $0.connection } }

    /// Hands the race its caller; false (and the caller resumed) when it was cancelled already.
    func start(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let finished = state.withLock { state in
            if !state.finished { state.continuation = continuation }
            return state.finished
        }
        if finished { continuation.resume(throwing: CancellationError()) }
        return !finished
    }

    func leased(_ connection: PostgresConnection) {
        state.withLock { $0.connection = connection }
    }

    func onAbandon(_ action: @escaping @Sendable () -> Void) {
        let finished = state.withLock { state in
            if !state.finished { state.abandon = action }
            return state.finished
        }
        if finished { action() }
    }

    /// Runs `action` after `delay` unless the race is over by then, in place of the pending
    /// action of the same `timer`.
    func schedule(
        _ timer: Timer, on eventLoop: any EventLoop, in delay: Duration, _ action: @escaping @Sendable () -> Void
    ) {
        let scheduled = eventLoop.scheduleTask(in: .nanoseconds(Int64(max(delay, .zero) / .nanoseconds(1)))) {
            action()
        }
        let (finished, replaced) = state.withLock { state -> (Bool, Scheduled<Void>?) in
            guard !state.finished else { return (true, nil) }
            switch timer {
            case .limit:
                defer { state.timers.limit = scheduled }
                return (false, state.timers.limit)
            case .closedCheck:
                defer { state.timers.closedCheck = scheduled }
                return (false, state.timers.closedCheck)
            }
        }
        replaced?.cancel()
        if finished { scheduled.cancel() }
    }

    /// Ends the race with `result` unless it is over already; returns whether this ended it.
    @discardableResult
    func finish(with result: Result<T, any Error>) -> Bool {
        let ended = state.withLock { state -> State? in
            guard !state.finished else { return nil }
            defer { state = State(finished: true) }
            return state
        }
        guard let ended else { return false }
        ended.timers.limit?.cancel()
        ended.timers.closedCheck?.cancel()
        if case .failure = result { ended.abandon?() }
        ended.continuation?.resume(with: result)
        return true
    }
}

extension AsyncSequence where Self: Sendable {
    /// Every element, in order. Reading to the end returns the connection to the pool clean.
    func collectAll() async throws -> [Element] {
        try await reduce(into: []) { $0.append($1) }
    }
}
