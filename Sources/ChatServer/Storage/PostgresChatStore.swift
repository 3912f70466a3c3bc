import ChatProtocol
import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// ``ChatStore`` on PostgreSQL through a PostgresNIO connection pool, in plain SQL.
///
/// Invariants are single statements or short transactions under row locks, so any number of
/// server nodes can share one database.
public final class PostgresChatStore: ChatStore {
    let client: PostgresClient
    private let logger: Logger

    /// Key of the advisory lock that serialises migrations across nodes starting together.
    private static let migrationLockKey: Int64 = 0x6368_6174_6D69_6772  // "chatmigr"

    public init(location: PostgresLocation, maxConnections: Int, logger: Logger) throws {
        let tls: PostgresClient.Configuration.TLS
        switch location.tls {
        case .disable:
            tls = .disable
        case .prefer, .require:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            tls = location.tls == .prefer ? .prefer(configuration) : .require(configuration)
        case .verifyFull:
            tls = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: tls)
        configuration.options.maximumConnections = maxConnections
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
    }

    /// Runs the connection pool until graceful shutdown.
    public func run() async throws {
        await client.run()
    }

    // MARK: Schema

    public func migrationStatus() async throws -> [MigrationStatus] {
        let migrations = try SQLDialect.postgres.migrations()
        return try await storageErrors {
            try await client.withConnection { connection in
                migrations.status(applied: try await Self.appliedMigrations(on: connection, logger: logger))
            }
        }
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
            _ = try migrations.pending(after: applied)
            let byVersion = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
            let reverted = applied.reversed().prefix(steps).compactMap { byVersion[$0.version] }
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
        _ body: (PostgresConnection, [AppliedMigration]) async throws -> [Migration]
    ) async throws -> [Migration] {
        try await transaction { connection in
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
        let exists =
            try await connection.query(
                "SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger
            ).decode(Bool.self).first { _ in true } ?? false
        guard exists else { return [] }
        var applied: [AppliedMigration] = []
        let rows = try await connection.query(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version", logger: logger)
        for try await (version, name, checksum, appliedAt) in rows.decode((Int, String, String, Date).self) {
            applied.append(AppliedMigration(version: version, name: name, checksum: checksum, appliedAt: appliedAt))
        }
        return applied
    }

    // MARK: Users

    private static let userColumns: PostgresQuery = "id, name, email, is_admin, created_at"

    public func createUser(_ user: NewUser) async throws -> User {
        let created = try await storageErrors {
            try await firstUser(
                """
                INSERT INTO users (name, name_key, email, email_key, password_hash)
                VALUES (\(user.name), \(user.nameKey), \(user.email), \(user.emailKey), \(user.passwordHash))
                RETURNING id, name, email, is_admin, created_at
                """)
        }
        guard let created else { throw StorageError.unexpected("INSERT INTO users returned no row") }
        return created
    }

    public func credentials(loginKey: String) async throws -> UserCredentials? {
        try await storageErrors {
            let rows = try await client.query(
                """
                SELECT id, name, email, is_admin, created_at, password_hash FROM users
                WHERE name_key = \(loginKey) OR email_key = \(loginKey)
                LIMIT 1
                """, logger: logger)
            for try await (id, name, email, isAdmin, createdAt, hash) in rows.decode(
                (Int64, String, String, Bool, Date, String).self)
            {
                let user = User(id: UserID(id), name: name, email: email, isAdmin: isAdmin, createdAt: createdAt)
                return UserCredentials(user: user, passwordHash: hash)
            }
            return nil
        }
    }

    public func updatePasswordHash(_ hash: String, for user: UserID) async throws {
        _ = try await storageErrors {
            try await client.query(
                "UPDATE users SET password_hash = \(hash) WHERE id = \(user.rawValue)", logger: logger)
        }
    }

    public func sessionUser(_ user: UserID, tokenID: String) async throws -> User? {
        try await storageErrors {
            try await firstUser(
                """
                SELECT id, name, email, is_admin, created_at FROM users
                WHERE id = \(user.rawValue)
                  AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE token_id = \(tokenID))
                """)
        }
    }

    public func revokeToken(_ tokenID: String, of user: UserID, expiresAt: Date) async throws {
        _ = try await storageErrors {
            try await client.query(
                """
                WITH forget_expired AS (DELETE FROM revoked_tokens WHERE expires_at < now())
                INSERT INTO revoked_tokens (token_id, user_id, expires_at)
                VALUES (\(tokenID), \(user.rawValue), \(expiresAt))
                ON CONFLICT (token_id) DO NOTHING
                """, logger: logger)
        }
    }

    public func users(nameKeyPrefix: String, limit: Int) async throws -> [User] {
        // name_key uses the "C" collation, so a prefix is exactly a range of the unique index.
        let upperBound = nameKeyPrefix + "\u{10FFFF}"
        return try await storageErrors {
            try await allUsers(
                """
                SELECT id, name, email, is_admin, created_at FROM users
                WHERE name_key >= \(nameKeyPrefix) AND name_key < \(upperBound)
                ORDER BY name_key
                LIMIT \(limit)
                """)
        }
    }

    public func setAdmin(_ isAdmin: Bool, nameKey: String) async throws -> User? {
        try await storageErrors {
            try await firstUser(
                """
                UPDATE users SET is_admin = \(isAdmin) WHERE name_key = \(nameKey)
                RETURNING id, name, email, is_admin, created_at
                """)
        }
    }

    private func allUsers(_ query: PostgresQuery) async throws -> [User] {
        var users: [User] = []
        let rows = try await client.query(query, logger: logger)
        for try await (id, name, email, isAdmin, createdAt) in rows.decode((Int64, String, String, Bool, Date).self) {
            users.append(User(id: UserID(id), name: name, email: email, isAdmin: isAdmin, createdAt: createdAt))
        }
        return users
    }

    private func firstUser(_ query: PostgresQuery) async throws -> User? {
        try await allUsers(query).first
    }

    // MARK: Chats

    public func createChat(name: String, type: ChatType, creator: UserID) async throws -> Chat {
        let chats = try await storageErrors {
            try await allChats(
                """
                WITH chat AS (
                    INSERT INTO chats (name, chat_type) VALUES (\(name), \(type.rawValue))
                    RETURNING id, name, chat_type, created_at, last_seq
                ), chat_group AS (
                    INSERT INTO groups (chat_id, creator_id) SELECT id, \(creator.rawValue) FROM chat
                    RETURNING chat_id, creator_id
                ), first_member AS (
                    INSERT INTO group_members (chat_id, user_id) SELECT chat_id, creator_id FROM chat_group
                )
                SELECT chat.id, chat.name, chat.chat_type, chat_group.creator_id, chat.created_at, chat.last_seq
                FROM chat JOIN chat_group ON chat_group.chat_id = chat.id
                """)
        }
        guard let chat = chats.first else { throw StorageError.unexpected("INSERT INTO chats returned no row") }
        return chat
    }

    public func chat(_ id: ChatID, member: UserID) async throws -> Chat? {
        try await storageErrors {
            try await allChats(
                """
                SELECT c.id, c.name, c.chat_type, g.creator_id, c.created_at, c.last_seq
                FROM chats c
                JOIN groups g ON g.chat_id = c.id
                JOIN group_members m ON m.chat_id = c.id AND m.user_id = \(member.rawValue)
                WHERE c.id = \(id.rawValue)
                """
            ).first
        }
    }

    private func allChats(_ query: PostgresQuery) async throws -> [Chat] {
        var chats: [Chat] = []
        let rows = try await client.query(query, logger: logger)
        for try await (id, name, type, creatorID, createdAt, lastSeq) in rows.decode(
            (Int64, String, String, Int64, Date, Int64).self)
        {
            chats.append(
                Chat(
                    id: ChatID(id), name: name, type: try Self.chatType(type), creatorID: UserID(creatorID),
                    createdAt: createdAt, lastSeq: lastSeq))
        }
        return chats
    }

    public func members(of chat: ChatID) async throws -> [ChatMember] {
        try await storageErrors {
            var members: [ChatMember] = []
            let rows = try await client.query(
                """
                SELECT m.user_id, u.name, m.read_seq
                FROM group_members m JOIN users u ON u.id = m.user_id
                WHERE m.chat_id = \(chat.rawValue)
                ORDER BY m.joined_at, m.user_id
                """, logger: logger)
            for try await (userID, name, readSeq) in rows.decode((Int64, String, Int64).self) {
                members.append(ChatMember(userID: UserID(userID), name: name, readSeq: readSeq))
            }
            return members
        }
    }

    public func addMember(_ user: UserID, to chat: ChatID) async throws {
        try await transaction { connection in
            // Locking the chat row serialises concurrent adds (and sends) to this chat, and the
            // count below runs in a later statement, so it sees every add committed before us.
            let locked = try await connection.query(
                "SELECT chat_type, last_seq FROM chats WHERE id = \(chat.rawValue) FOR UPDATE", logger: self.logger
            ).decode((String, Int64).self).first { _ in true }
            guard let (typeName, lastSeq) = locked else { throw ChatError.chatNotFound }
            let facts = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM users WHERE id = \(user.rawValue)),
                       EXISTS (SELECT 1 FROM group_members WHERE chat_id = \(chat.rawValue) AND user_id = \(user.rawValue)),
                       (SELECT count(*) FROM group_members WHERE chat_id = \(chat.rawValue))
                """, logger: self.logger
            ).decode((Bool, Bool, Int64).self).first { _ in true }
            guard let (userExists, isMember, memberCount) = facts else { throw ChatError.storageUnavailable }
            guard userExists else { throw ChatError.userNotFound }
            guard !isMember else { throw ChatError.alreadyMember }
            if try Self.chatType(typeName) == .private, memberCount >= 2 { throw ChatError.privateChatFull }
            // New members start with everything so far read, so history does not turn unread.
            try await connection.query(
                """
                INSERT INTO group_members (chat_id, user_id, read_seq)
                VALUES (\(chat.rawValue), \(user.rawValue), \(lastSeq))
                """, logger: self.logger)
        }
    }

    public func removeMember(_ user: UserID, from chat: ChatID) async throws {
        let removed = try await storageErrors {
            try await client.query(
                """
                DELETE FROM group_members WHERE chat_id = \(chat.rawValue) AND user_id = \(user.rawValue)
                RETURNING user_id
                """, logger: logger
            ).decode(Int64.self).first { _ in true }
        }
        guard removed != nil else { throw ChatError.notAMember }
    }

    public func chatSummaries(for user: UserID) async throws -> [ChatSummary] {
        try await storageErrors {
            var summaries: [ChatSummary] = []
            let rows = try await client.query(
                """
                SELECT c.id, c.name, c.chat_type, g.creator_id, c.created_at, c.last_seq, me.read_seq,
                       m.id, m.sender_id, m.client_id, m.text, m.created_at,
                       (SELECT min(o.read_seq) FROM group_members o
                        WHERE o.chat_id = c.id AND o.user_id <> m.sender_id)
                FROM group_members me
                JOIN chats c ON c.id = me.chat_id
                JOIN groups g ON g.chat_id = c.id
                LEFT JOIN messages m ON m.chat_id = c.id AND m.seq = c.last_seq
                WHERE me.user_id = \(user.rawValue)
                ORDER BY COALESCE(m.created_at, c.created_at) DESC, c.id DESC
                """, logger: logger)
            for try await row in rows.decode(
                (
                    Int64, String, String, Int64, Date, Int64, Int64, Int64?, Int64?, String?, String?, Date?,
                    Int64?
                ).self)
            {
                let (chatID, name, type, creatorID, createdAt, lastSeq, readSeq) = (
                    row.0, row.1, row.2, row.3, row.4, row.5, row.6
                )
                let chat = Chat(
                    id: ChatID(chatID), name: name, type: try Self.chatType(type), creatorID: UserID(creatorID),
                    createdAt: createdAt, lastSeq: lastSeq)
                var lastMessage: Message?
                if let id = row.7, let senderID = row.8, let text = row.10, let sentAt = row.11 {
                    lastMessage = Message(
                        id: MessageID(id), chatID: chat.id, seq: lastSeq, senderID: UserID(senderID), clientID: row.9,
                        text: text, createdAt: sentAt)
                }
                summaries.append(
                    ChatSummary(chat: chat, readSeq: readSeq, lastMessage: lastMessage, lowestOtherReadSeq: row.12))
            }
            return summaries
        }
    }

    // MARK: Messages

    public func appendMessage(_ message: NewMessage) async throws -> AppendedMessage {
        do {
            // One statement: an earlier message with this client id wins; otherwise, if the
            // sender is a member, the chat row's lock hands out the next seq, the message is
            // stored and the sender's read marker follows it. A racing duplicate fails the
            // unique constraint, which rolls back its seq increment: no gap.
            let rows = try await client.query(
                """
                WITH existing AS (
                    SELECT id, chat_id, seq, sender_id, client_id, text, created_at FROM messages
                    WHERE sender_id = \(message.senderID.rawValue) AND client_id = \(message.clientID)
                ), next AS (
                    UPDATE chats SET last_seq = last_seq + 1
                    WHERE id = \(message.chatID.rawValue)
                      AND NOT EXISTS (SELECT 1 FROM existing)
                      AND EXISTS (SELECT 1 FROM group_members
                                  WHERE chat_id = \(message.chatID.rawValue) AND user_id = \(message.senderID.rawValue))
                    RETURNING id, last_seq
                ), inserted AS (
                    INSERT INTO messages (chat_id, seq, sender_id, client_id, text)
                    SELECT id, last_seq, \(message.senderID.rawValue), \(message.clientID), \(message.text) FROM next
                    RETURNING id, chat_id, seq, sender_id, client_id, text, created_at
                ), sender_marker AS (
                    UPDATE group_members SET read_seq = inserted.seq FROM inserted
                    WHERE group_members.chat_id = inserted.chat_id AND group_members.user_id = inserted.sender_id
                )
                SELECT false, * FROM inserted
                UNION ALL
                SELECT true, * FROM existing
                """, logger: logger)
            for try await row in rows.decode((Bool, Int64, Int64, Int64, Int64, String?, String, Date).self) {
                return AppendedMessage(
                    message: Self.message(row.1, row.2, row.3, row.4, row.5, row.6, row.7), duplicate: row.0)
            }
            throw ChatError.notAMember
        } catch let error as PSQLError where Self.isUniqueViolation(error, constraint: "messages_sender_client_unique")
        {
            guard let clientID = message.clientID,
                let original = try await messageBy(sender: message.senderID, clientID: clientID)
            else { throw ChatError.storageUnavailable }
            return AppendedMessage(message: original, duplicate: true)
        } catch {
            throw mapError(error)
        }
    }

    private func messageBy(sender: UserID, clientID: String) async throws -> Message? {
        try await storageErrors {
            try await allMessages(
                """
                SELECT id, chat_id, seq, sender_id, client_id, text, created_at FROM messages
                WHERE sender_id = \(sender.rawValue) AND client_id = \(clientID)
                """
            ).first
        }
    }

    public func messages(in chat: ChatID, _ query: HistoryQuery) async throws -> [Message] {
        let columns = "id, chat_id, seq, sender_id, client_id, text, created_at"
        let sql: PostgresQuery
        switch query {
        case .offset(let seq, let limit), .after(let seq, let limit):
            sql = """
                SELECT \(unescaped: columns) FROM messages
                WHERE chat_id = \(chat.rawValue) AND seq > \(seq)
                ORDER BY seq LIMIT \(limit)
                """
        case .before(let seq, let limit):
            sql = """
                SELECT * FROM (
                    SELECT \(unescaped: columns) FROM messages
                    WHERE chat_id = \(chat.rawValue) AND seq < \(seq)
                    ORDER BY seq DESC LIMIT \(limit)
                ) AS page ORDER BY seq
                """
        }
        return try await storageErrors { try await allMessages(sql) }
    }

    private func allMessages(_ query: PostgresQuery) async throws -> [Message] {
        var messages: [Message] = []
        let rows = try await client.query(query, logger: logger)
        for try await row in rows.decode((Int64, Int64, Int64, Int64, String?, String, Date).self) {
            messages.append(Self.message(row.0, row.1, row.2, row.3, row.4, row.5, row.6))
        }
        return messages
    }

    private static func message(
        _ id: Int64, _ chatID: Int64, _ seq: Int64, _ senderID: Int64, _ clientID: String?, _ text: String,
        _ createdAt: Date
    ) -> Message {
        Message(
            id: MessageID(id), chatID: ChatID(chatID), seq: seq, senderID: UserID(senderID), clientID: clientID,
            text: text, createdAt: createdAt)
    }

    // MARK: Administration

    public func counts() async throws -> StoreCounts {
        try await storageErrors {
            // Sequences are gap-free, so the sum of every chat's last_seq counts all messages
            // without scanning the messages table.
            let row = try await client.query(
                """
                SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM chats),
                       (SELECT count(*) FROM group_members), (SELECT COALESCE(sum(last_seq), 0)::BIGINT FROM chats)
                """, logger: logger
            ).decode((Int64, Int64, Int64, Int64).self).first { _ in true }
            guard let (users, chats, members, messages) = row else { throw ChatError.storageUnavailable }
            return StoreCounts(users: users, chats: chats, members: members, messages: messages)
        }
    }

    // MARK: Errors and transactions

    private static func chatType(_ name: String) throws -> ChatType {
        guard let type = ChatType(rawValue: name) else { throw StorageError.corruptRow("chat_type \(name)") }
        return type
    }

    /// Runs `body` in a transaction on one pooled connection, mapping errors.
    private func transaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                do {
                    let value = try await body(connection)
                    try await connection.query("COMMIT", logger: logger)
                    return value
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        } catch {
            throw mapError(error)
        }
    }

    /// Runs `body`, turning driver errors into domain and storage errors.
    private func storageErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw mapError(error)
        }
    }

    private func mapError(_ error: any Error) -> any Error {
        guard let error = error as? PSQLError else { return error }
        if Self.isUniqueViolation(error, constraint: "users_name_key_unique") { return ChatError.nameTaken }
        if Self.isUniqueViolation(error, constraint: "users_email_key_unique") { return ChatError.emailTaken }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
            logger.error("PostgreSQL unavailable", metadata: ["error": "\(String(reflecting: error))"])
            return ChatError.storageUnavailable
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            // Class 08: connection exceptions; 57P0x: shutdown or crash; 53xxx: out of resources.
            if state.hasPrefix("08") || state.hasPrefix("57P0") || state.hasPrefix("53") {
                logger.error("PostgreSQL unavailable", metadata: ["sqlstate": "\(state)"])
                return ChatError.storageUnavailable
            }
            return StorageError.unexpected(String(reflecting: error))
        default:
            return StorageError.unexpected(String(reflecting: error))
        }
    }

    private static func isUniqueViolation(_ error: PSQLError, constraint: String) -> Bool {
        error.code == .server && error.serverInfo?[.sqlState] == "23505"
            && error.serverInfo?[.constraintName] == constraint
    }
}
