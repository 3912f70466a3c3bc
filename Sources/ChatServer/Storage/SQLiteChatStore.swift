import ChatProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO
import ServiceLifecycle
import Synchronization

/// ``ChatStore`` on an embedded SQLite database file, for single-node use.
///
/// SQLite allows one writer at a time, so every write (and every multi-statement
/// transaction) runs on one connection behind an in-process FIFO lock: writers queue in the
/// server instead of spinning on SQLite's busy handler, and "database is locked" never
/// reaches a client. Reads use separate connections, which WAL mode lets run beside the
/// writer. Checks made inside a write transaction cannot race, because nothing else writes
/// meanwhile.
public final class SQLiteChatStore: ChatStore, BulkMessageFill {
    private let writer: SQLiteConnection
    private let readers: [SQLiteConnection]
    /// One statement at a time per reader: see ``read(_:)``.
    private let readerLocks: [AsyncLock]
    private let nextReader = Mutex(0)
    private let writeLock = AsyncLock()
    /// The threads the connections' SQLite calls run on: see ``open(path:readerCount:metrics:logger:)``.
    private let threadPool: NIOThreadPool
    private let metrics: ChatMetrics
    private let logger: Logger

    private init(
        writer: SQLiteConnection, readers: [SQLiteConnection], threadPool: NIOThreadPool, metrics: ChatMetrics,
        logger: Logger
    ) {
        self.writer = writer
        self.readers = readers
        self.threadPool = threadPool
        self.readerLocks = readers.map { _ in AsyncLock() }
        self.metrics = metrics
        self.logger = logger
    }

    /// Opens (creating if needed) the database file at `path` in WAL mode.
    ///
    /// Every SQLite call blocks the thread it runs on, so the store has a thread for each of
    /// its connections, its own: on the process-wide `NIOThreadPool` its statements queued
    /// behind password hashing, which runs there too, and behind other stores' statements.
    public static func open(
        path: String, readerCount: Int = 2, metrics: ChatMetrics = .disabled, logger: Logger
    ) async throws -> SQLiteChatStore {
        let storage = SQLiteConnection.Storage.file(path: path)
        let threadPool = NIOThreadPool(numberOfThreads: max(1, readerCount) + 1)
        threadPool.start()
        var opened: [SQLiteConnection] = []
        do {
            let writer = try await SQLiteConnection.open(
                storage: storage, threadPool: threadPool, logger: logger,
                on: MultiThreadedEventLoopGroup.singleton.any()
            ).get()
            opened.append(writer)
            _ = try await writer.run("PRAGMA journal_mode = WAL")
            // FULL: a commit is on disk before it is acknowledged ("persist, then publish").
            _ = try await writer.run("PRAGMA synchronous = FULL")
            _ = try await writer.run("PRAGMA foreign_keys = ON")
            // Only other processes (an admin command beside the server) ever make us wait.
            _ = try await writer.run("PRAGMA busy_timeout = 10000")
            var readers: [SQLiteConnection] = []
            for _ in 0..<max(1, readerCount) {
                let reader = try await SQLiteConnection.open(
                    storage: storage, threadPool: threadPool, logger: logger,
                    on: MultiThreadedEventLoopGroup.singleton.any()
                ).get()
                opened.append(reader)
                readers.append(reader)
                _ = try await reader.run("PRAGMA busy_timeout = 10000")
                _ = try await reader.run("PRAGMA query_only = ON")
            }
            return SQLiteChatStore(
                writer: writer, readers: readers, threadPool: threadPool, metrics: metrics, logger: logger)
        } catch {
            for connection in opened { try? await connection.closeUninterrupted() }
            try? await threadPool.shutdownGracefully()
            throw error
        }
    }

    /// Keeps the connections open until graceful shutdown (or cancellation), then closes them.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Closes every connection once the reads and writes under way have finished; later ones
    /// fail with ``ChatError/storageUnavailable`` (never with SQLite's "misuse" of a closed
    /// connection).
    public func close() async {
        await writeLock.withLock {
            if !writer.isClosed { try? await writer.closeUninterrupted() }
        }
        for (reader, lock) in zip(readers, readerLocks) {
            await lock.withLock {
                if !reader.isClosed { try? await reader.closeUninterrupted() }
            }
        }
        // Nothing runs on the threads any more: a closed connection is never used.
        try? await threadPool.shutdownGracefully()
    }

    public func checkConnection() async throws {
        do {
            _ = try await read { try await $0.run("SELECT 1") }
        } catch {
            throw StorageError.unreachable("SQLite: \(error)")
        }
    }

    // MARK: Schema

    public func migrationStatus() async throws -> [MigrationStatus] {
        let migrations = try SQLDialect.sqlite.migrations()
        return try await read { connection in
            migrations.status(applied: try await Self.appliedMigrations(on: connection))
        }
    }

    @discardableResult
    public func migrateUp() async throws -> [Migration] {
        let migrations = try SQLDialect.sqlite.migrations()
        return try await migrationTransaction { connection, applied in
            let pending = try migrations.pending(after: applied)
            for migration in pending {
                for statement in Migration.statements(in: migration.upSQL) {
                    _ = try await connection.run(statement)
                }
                _ = try await connection.run(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
                    [.integer(migration.version), .text(migration.name), .text(migration.checksum)])
            }
            return pending
        }
    }

    @discardableResult
    public func migrateDown(steps: Int) async throws -> [Migration] {
        let migrations = try SQLDialect.sqlite.migrations()
        return try await migrationTransaction { connection, applied in
            let reverted = try migrations.newestApplied(steps, of: applied)
            for migration in reverted {
                for statement in Migration.statements(in: migration.downSQL) {
                    _ = try await connection.run(statement)
                }
                _ = try await connection.run(
                    "DELETE FROM schema_migrations WHERE version = ?", [.integer(migration.version)])
            }
            return reverted
        }
    }

    private func migrationTransaction(
        _ body: (SQLiteConnection, [AppliedMigration]) async throws -> [Migration]
    ) async throws -> [Migration] {
        try await writeTransaction { connection in
            _ = try await connection.run(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    INTEGER PRIMARY KEY,
                    name       TEXT NOT NULL,
                    checksum   TEXT NOT NULL,
                    applied_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
                ) STRICT
                """)
            return try await body(connection, try await Self.appliedMigrations(on: connection))
        }
    }

    private static func appliedMigrations(on connection: SQLiteConnection) async throws -> [AppliedMigration] {
        let exists = try await connection.run(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
        guard !exists.isEmpty else { return [] }
        return try await connection.run(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
        ).map { row in
            AppliedMigration(
                version: Int(try row.int("version")), name: try row.string("name"),
                checksum: try row.string("checksum"), appliedAt: try row.date("applied_at"))
        }
    }

    // MARK: Users

    public func createUser(_ user: NewUser) async throws -> User {
        let rows = try await write { connection in
            try await connection.run(
                """
                INSERT INTO users (name, name_key, email, email_key, password_hash) VALUES (?, ?, ?, ?, ?)
                RETURNING id, name, email, is_admin, created_at
                """,
                [
                    .text(user.name), .text(user.nameKey), .text(user.email), .text(user.emailKey),
                    .text(user.passwordHash),
                ])
        }
        guard let row = rows.first else { throw StorageError.unexpected("INSERT INTO users returned no row") }
        return try Self.user(row)
    }

    public func credentials(loginKey: String) async throws -> UserCredentials? {
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT id, name, email, is_admin, created_at, password_hash FROM users
                WHERE name_key = ?1 OR email_key = ?1 LIMIT 1
                """, [.text(loginKey)])
        }
        return try rows.first.map {
            UserCredentials(user: try Self.user($0), passwordHash: try $0.string("password_hash"))
        }
    }

    public func updatePasswordHash(_ hash: String, for user: UserID) async throws {
        _ = try await write { connection in
            try await connection.run(
                "UPDATE users SET password_hash = ? WHERE id = ?", [.text(hash), .integer(Int(user.rawValue))])
        }
    }

    public func changePassword(_ hash: String, for user: UserID, sessionsValidFrom: Date) async throws {
        _ = try await write { connection in
            try await connection.run(
                "UPDATE users SET password_hash = ?, sessions_valid_from = ? WHERE id = ?",
                [.text(hash), .integer(Self.milliseconds(sessionsValidFrom)), .integer(Int(user.rawValue))])
        }
    }

    public func sessionUser(_ user: UserID, tokenID: String, issuedAt: Date) async throws -> User? {
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT id, name, email, is_admin, created_at FROM users
                WHERE id = ?1 AND (sessions_valid_from IS NULL OR sessions_valid_from <= ?3)
                  AND NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE token_id = ?2)
                """, [.integer(Int(user.rawValue)), .text(tokenID), .integer(Self.milliseconds(issuedAt))])
        }
        return try rows.first.map(Self.user)
    }

    public func revokeToken(_ tokenID: String, of user: UserID, expiresAt: Date) async throws {
        try await writeTransaction { connection in
            _ = try await connection.run(
                "DELETE FROM revoked_tokens WHERE expires_at < ?", [.integer(Self.milliseconds(Date()))])
            _ = try await connection.run(
                "INSERT OR IGNORE INTO revoked_tokens (token_id, user_id, expires_at) VALUES (?, ?, ?)",
                [.text(tokenID), .integer(Int(user.rawValue)), .integer(Self.milliseconds(expiresAt))])
        }
    }

    public func users(nameKeyPrefix: String, limit: Int) async throws -> [User] {
        // SQLite compares text bytewise (BINARY), so a prefix is a range of the unique index.
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT id, name, email, is_admin, created_at FROM users
                WHERE name_key >= ? AND name_key < ? ORDER BY name_key LIMIT ?
                """, [.text(nameKeyPrefix), .text(nameKeyPrefix + "\u{10FFFF}"), .integer(limit)])
        }
        return try rows.map(Self.user)
    }

    public func user(_ id: UserID) async throws -> User? {
        let rows = try await read { connection in
            try await connection.run(
                "SELECT id, name, email, is_admin, created_at FROM users WHERE id = ?", [.integer(Int(id.rawValue))])
        }
        return try rows.first.map(Self.user)
    }

    public func setAdmin(_ isAdmin: Bool, nameKey: String) async throws -> User? {
        let rows = try await write { connection in
            try await connection.run(
                "UPDATE users SET is_admin = ? WHERE name_key = ? RETURNING id, name, email, is_admin, created_at",
                [.integer(isAdmin ? 1 : 0), .text(nameKey)])
        }
        return try rows.first.map(Self.user)
    }

    private static func user(_ row: SQLiteRow) throws -> User {
        User(
            id: UserID(try row.int("id")), name: try row.string("name"), email: try row.string("email"),
            isAdmin: try row.int("is_admin") != 0, createdAt: try row.date("created_at"))
    }

    // MARK: Chats

    private static let chatColumns =
        "c.id AS id, c.name AS name, c.chat_type AS chat_type, g.creator_id AS creator_id, c.created_at AS created_at, c.last_seq AS last_seq, c.last_update AS last_update"

    public func createChat(name: String, type: ChatType, creator: UserID) async throws -> Chat {
        let rows = try await writeTransaction { connection in
            let inserted = try await connection.run(
                "INSERT INTO chats (name, chat_type) VALUES (?, ?) RETURNING id", [.text(name), .text(type.rawValue)])
            guard let id = try inserted.first?.int("id") else {
                throw StorageError.unexpected("INSERT INTO chats returned no row")
            }
            _ = try await connection.run(
                "INSERT INTO groups (chat_id, creator_id) VALUES (?, ?)",
                [.integer(Int(id)), .integer(Int(creator.rawValue))])
            _ = try await connection.run(
                "INSERT INTO group_members (chat_id, user_id) VALUES (?, ?)",
                [.integer(Int(id)), .integer(Int(creator.rawValue))])
            return try await connection.run(
                "SELECT \(Self.chatColumns) FROM chats c JOIN groups g ON g.chat_id = c.id WHERE c.id = ?",
                [.integer(Int(id))])
        }
        guard let row = rows.first else { throw StorageError.unexpected("created chat not found") }
        return try Self.chat(row)
    }

    public func chat(_ id: ChatID, member: UserID) async throws -> Chat? {
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT \(Self.chatColumns) FROM chats c
                JOIN groups g ON g.chat_id = c.id
                JOIN group_members m ON m.chat_id = c.id AND m.user_id = ?
                WHERE c.id = ?
                """, [.integer(Int(member.rawValue)), .integer(Int(id.rawValue))])
        }
        return try rows.first.map(Self.chat)
    }

    public func members(of chat: ChatID) async throws -> [ChatMember] {
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT m.user_id AS user_id, u.name AS name, m.read_seq AS read_seq
                FROM group_members m JOIN users u ON u.id = m.user_id
                WHERE m.chat_id = ? ORDER BY m.joined_at, m.user_id
                """, [.integer(Int(chat.rawValue))])
        }
        return try rows.map {
            ChatMember(
                userID: UserID(try $0.int("user_id")), name: try $0.string("name"), readSeq: try $0.int("read_seq"))
        }
    }

    public func addMember(_ user: UserID, to chat: ChatID, by actor: UserID?) async throws {
        try await writeTransaction { connection in
            let chatRows = try await connection.run(
                "SELECT chat_type, last_seq FROM chats WHERE id = ?", [.integer(Int(chat.rawValue))])
            guard let chatRow = chatRows.first else { throw ChatError.chatNotFound }
            let facts = try await connection.run(
                """
                SELECT EXISTS (SELECT 1 FROM users WHERE id = ?2) AS user_exists,
                       EXISTS (SELECT 1 FROM group_members WHERE chat_id = ?1 AND user_id = ?2) AS is_member,
                       (SELECT count(*) FROM group_members WHERE chat_id = ?1) AS member_count
                """, [.integer(Int(chat.rawValue)), .integer(Int(user.rawValue))])
            guard let fact = facts.first else { throw StorageError.unexpected("membership facts returned no row") }
            guard try fact.int("user_exists") != 0 else { throw ChatError.userNotFound }
            guard try fact.int("is_member") == 0 else { throw ChatError.alreadyMember }
            if try Self.chatType(chatRow.string("chat_type")) == .private, try fact.int("member_count") >= 2 {
                throw ChatError.privateChatFull
            }
            let binds: [SQLiteData] = [
                .integer(Int(chat.rawValue)), .integer(Int(user.rawValue)), .integer(Int(try chatRow.int("last_seq"))),
                actor.map { .integer(Int($0.rawValue)) } ?? .null,
            ]
            _ = try await connection.run(
                "INSERT INTO group_members (chat_id, user_id, read_seq) VALUES (?1, ?2, ?3)", Array(binds[0..<3]))
            _ = try await connection.run(
                """
                INSERT INTO membership_events (chat_id, kind, user_id, actor_id, after_seq)
                VALUES (?1, 'added', ?2, ?4, ?3)
                """, binds)
        }
    }

    public func removeMember(_ user: UserID, from chat: ChatID, by actor: UserID?) async throws {
        let binds: [SQLiteData] = [
            .integer(Int(chat.rawValue)), .integer(Int(user.rawValue)),
            actor.map { .integer(Int($0.rawValue)) } ?? .null,
        ]
        let rows = try await writeTransaction { connection in
            let rows = try await connection.run(
                "DELETE FROM group_members WHERE chat_id = ?1 AND user_id = ?2 RETURNING user_id", Array(binds[0..<2]))
            guard !rows.isEmpty else { return rows }
            _ = try await connection.run(
                """
                INSERT INTO membership_events (chat_id, kind, user_id, actor_id, after_seq)
                SELECT ?1, 'removed', ?2, ?3, last_seq FROM chats WHERE id = ?1
                """, binds)
            return rows
        }
        guard !rows.isEmpty else { throw ChatError.notAMember }
    }

    public func leaveChat(_ user: UserID, chat: ChatID) async throws -> UserID? {
        let binds: [SQLiteData] = [.integer(Int(chat.rawValue)), .integer(Int(user.rawValue))]
        // SQLite's single writer serialises leaves: each statement sees the ones before it.
        let outcome = try await writeTransaction { connection -> (left: Bool, newCreator: Int?) in
            let removed = try await connection.run(
                "DELETE FROM group_members WHERE chat_id = ?1 AND user_id = ?2 RETURNING user_id", binds)
            guard !removed.isEmpty else { return (false, nil) }
            _ = try await connection.run(
                """
                INSERT INTO membership_events (chat_id, kind, user_id, actor_id, after_seq)
                SELECT ?1, 'removed', ?2, ?2, last_seq FROM chats WHERE id = ?1
                """, binds)
            // The member who joined earliest, as the member list orders them, succeeds a
            // creator who leaves.
            let promoted = try await connection.run(
                """
                UPDATE groups SET creator_id = successor.user_id
                FROM (SELECT user_id FROM group_members WHERE chat_id = ?1 ORDER BY joined_at, user_id LIMIT 1)
                    AS successor
                WHERE groups.chat_id = ?1 AND groups.creator_id = ?2
                RETURNING groups.creator_id AS creator_id
                """, binds)
            return (true, promoted.first?.column("creator_id")?.integer)
        }
        guard outcome.left else { throw ChatError.chatNotFound }
        return outcome.newCreator.map { UserID(Int64($0)) }
    }

    public func membershipEvents(
        in chat: ChatID, afterSeqs: ClosedRange<Int64>, limit: Int
    ) async throws
        -> [MembershipEvent]
    {
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT e.id AS id, e.kind AS kind, e.user_id AS user_id, subject.name AS user_name,
                       e.actor_id AS actor_id, actor.name AS actor_name, e.after_seq AS after_seq,
                       e.created_at AS created_at
                FROM membership_events e
                JOIN users subject ON subject.id = e.user_id
                LEFT JOIN users actor ON actor.id = e.actor_id
                WHERE e.chat_id = ? AND e.after_seq BETWEEN ? AND ?
                ORDER BY e.id
                LIMIT ?
                """,
                [
                    .integer(Int(chat.rawValue)), .integer(Int(afterSeqs.lowerBound)),
                    .integer(Int(afterSeqs.upperBound)), .integer(limit),
                ])
        }
        return try rows.map { row in
            guard let kind = MembershipEvent.Kind(rawValue: try row.string("kind")) else {
                throw StorageError.corruptRow("kind is not a membership event kind")
            }
            return MembershipEvent(
                id: try row.int("id"), chatID: chat, kind: kind, user: UserID(try row.int("user_id")),
                userName: try row.string("user_name"), actor: row.column("actor_id")?.integer.map { UserID(Int64($0)) },
                actorName: row.column("actor_name")?.string, afterSeq: try row.int("after_seq"),
                createdAt: try row.date("created_at"))
        }
    }

    public func chatSummaries(for user: UserID) async throws -> [ChatSummary] {
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT \(Self.chatColumns), me.read_seq AS read_seq,
                       m.id AS message_id, m.sender_id AS sender_id, m.client_id AS client_id, m.text AS text,
                       m.created_at AS sent_at, m.reply_to AS reply_to, m.edited_at AS edited_at,
                       m.deleted AS deleted, m.update_seq AS update_seq, sender.name AS sender_name,
                       (SELECT min(o.read_seq) FROM group_members o
                        WHERE o.chat_id = c.id AND o.user_id <> m.sender_id) AS lowest_other_read_seq
                FROM group_members me
                JOIN chats c ON c.id = me.chat_id
                JOIN groups g ON g.chat_id = c.id
                LEFT JOIN messages m ON m.chat_id = c.id AND m.seq = c.last_seq
                LEFT JOIN users sender ON sender.id = m.sender_id
                WHERE me.user_id = ?
                ORDER BY COALESCE(m.created_at, c.created_at) DESC, c.id DESC
                """, [.integer(Int(user.rawValue))])
        }
        return try rows.map { row in
            let chat = try Self.chat(row)
            var lastMessage: Message?
            if let id = row.column("message_id")?.integer {
                lastMessage = Message(
                    id: MessageID(Int64(id)), chatID: chat.id, seq: chat.lastSeq,
                    senderID: UserID(try row.int("sender_id")),
                    clientID: row.column("client_id")?.string, text: try row.string("text"),
                    createdAt: try row.date("sent_at"), replyTo: row.optionalInt("reply_to").map(MessageID.init),
                    editedAt: row.optionalDate("edited_at"), deleted: try row.int("deleted") != 0,
                    updateSeq: try row.int("update_seq"))
            }
            return ChatSummary(
                chat: chat, readSeq: try row.int("read_seq"), lastMessage: lastMessage,
                lastSenderName: row.column("sender_name")?.string,
                lowestOtherReadSeq: row.column("lowest_other_read_seq")?.integer.map(Int64.init))
        }
    }

    public func chatDetails(for user: UserID) async throws -> [ChatDetails] {
        let (chatRows, memberRows) = try await read { connection in
            let chats = try await connection.run(
                """
                SELECT \(Self.chatColumns) FROM group_members me
                JOIN chats c ON c.id = me.chat_id JOIN groups g ON g.chat_id = c.id
                WHERE me.user_id = ? ORDER BY c.id
                """, [.integer(Int(user.rawValue))])
            let members = try await connection.run(
                """
                SELECT m.chat_id AS chat_id, m.user_id AS user_id, u.name AS name, m.read_seq AS read_seq
                FROM group_members m JOIN users u ON u.id = m.user_id
                WHERE m.chat_id IN (SELECT chat_id FROM group_members WHERE user_id = ?)
                ORDER BY m.chat_id, m.joined_at, m.user_id
                """, [.integer(Int(user.rawValue))])
            return (chats, members)
        }
        var byChat: [ChatID: [ChatMember]] = [:]
        for row in memberRows {
            byChat[ChatID(try row.int("chat_id")), default: []].append(
                ChatMember(
                    userID: UserID(try row.int("user_id")), name: try row.string("name"),
                    readSeq: try row.int("read_seq")))
        }
        return try chatRows.map { row in
            let chat = try Self.chat(row)
            return ChatDetails(chat: chat, members: byChat[chat.id] ?? [])
        }
    }

    public func advanceReadMarker(of user: UserID, in chat: ChatID, to seq: Int64) async throws -> Int64? {
        try await writeTransaction { connection in
            let rows = try await connection.run(
                """
                SELECT m.read_seq AS read_seq, c.last_seq AS last_seq
                FROM group_members m JOIN chats c ON c.id = m.chat_id
                WHERE m.chat_id = ? AND m.user_id = ?
                """, [.integer(Int(chat.rawValue)), .integer(Int(user.rawValue))])
            guard let row = rows.first else { throw ChatError.notAMember }
            let target = min(seq, try row.int("last_seq"))
            guard target > (try row.int("read_seq")) else { return nil }
            _ = try await connection.run(
                "UPDATE group_members SET read_seq = ? WHERE chat_id = ? AND user_id = ?",
                [.integer(Int(target)), .integer(Int(chat.rawValue)), .integer(Int(user.rawValue))])
            return target
        }
    }

    private static func chat(_ row: SQLiteRow) throws -> Chat {
        Chat(
            id: ChatID(try row.int("id")), name: try row.string("name"), type: try chatType(row.string("chat_type")),
            creatorID: UserID(try row.int("creator_id")), createdAt: try row.date("created_at"),
            lastSeq: try row.int("last_seq"), lastUpdate: try row.int("last_update"))
    }

    private static func chatType(_ name: String) throws -> ChatType {
        guard let type = ChatType(rawValue: name) else { throw StorageError.corruptRow("chat_type \(name)") }
        return type
    }

    // MARK: Messages

    private static let messageColumns =
        "id, chat_id, seq, sender_id, client_id, text, created_at, reply_to, edited_at, deleted, update_seq"

    public func appendMessages(_ messages: [NewMessage]) async throws -> [Result<AppendedMessage, ChatError>] {
        guard let chatID = messages.first?.chatID else { return [] }
        return try await writeTransaction { connection in
            let chat = SQLiteData.integer(Int(chatID.rawValue))
            var results: [Result<AppendedMessage, ChatError>] = []
            for message in messages {
                let clientID: SQLiteData = message.clientID.map { .text($0) } ?? .null
                let sender = SQLiteData.integer(Int(message.senderID.rawValue))
                let existing = try await connection.run(
                    "SELECT \(Self.messageColumns) FROM messages WHERE sender_id = ? AND client_id = ?",
                    [sender, clientID])
                if let original = existing.first {
                    results.append(.success(AppendedMessage(message: try Self.message(original), duplicate: true)))
                    continue
                }
                let membership = try await connection.run(
                    "SELECT 1 FROM group_members WHERE chat_id = ? AND user_id = ?", [chat, sender])
                guard !membership.isEmpty else {
                    results.append(.failure(.notAMember))
                    continue
                }
                let next = try await connection.run(
                    "UPDATE chats SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq", [chat])
                guard let seq = try next.first?.int("last_seq") else {
                    results.append(.failure(.notAMember))
                    continue
                }
                let inserted = try await connection.run(
                    """
                    INSERT INTO messages (chat_id, seq, sender_id, client_id, text, reply_to) VALUES (?, ?, ?, ?, ?, ?)
                    RETURNING \(Self.messageColumns)
                    """,
                    [
                        chat, .integer(Int(seq)), sender, clientID, .text(message.text),
                        message.replyTo.map { .integer(Int($0.rawValue)) } ?? .null,
                    ])
                _ = try await connection.run(
                    "UPDATE group_members SET read_seq = ?1 WHERE chat_id = ?2 AND user_id = ?3 AND read_seq < ?1",
                    [.integer(Int(seq)), chat, sender])
                guard let row = inserted.first else {
                    throw StorageError.unexpected("INSERT INTO messages returned no row")
                }
                results.append(.success(AppendedMessage(message: try Self.message(row), duplicate: false)))
            }
            return results
        }
    }

    public func refreshStatistics() async throws {
        try await write { connection in _ = try await connection.run("ANALYZE") }
    }

    public func appendGeneratedMessages(
        _ count: Int, to chat: ChatID, from sender: UserID, words: [String]
    ) async throws -> Int64 {
        guard count >= 1 else { throw ChatError.invalidField("count", "must be at least 1") }
        let wordList = String(decoding: try JSONEncoder().encode(words), as: UTF8.self)
        return try await writeTransaction { connection in
            let chat = SQLiteData.integer(Int(chat.rawValue))
            let sender = SQLiteData.integer(Int(sender.rawValue))
            let membership = try await connection.run(
                "SELECT 1 FROM group_members WHERE chat_id = ? AND user_id = ?", [chat, sender])
            guard !membership.isEmpty else { throw ChatError.notAMember }
            let next = try await connection.run(
                "UPDATE chats SET last_seq = last_seq + ? WHERE id = ? RETURNING last_seq", [.integer(count), chat])
            guard let last = try next.first?.int("last_seq") else { throw ChatError.notAMember }
            _ = try await connection.run(
                """
                INSERT INTO messages (chat_id, seq, sender_id, text)
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1),
                position(p) AS (SELECT 1 UNION ALL SELECT p + 1 FROM position WHERE p < ?6)
                SELECT ?2, ?3 + i, ?4, CASE WHEN json_array_length(?5) = 0 THEN 'message ' || (?3 + i) ELSE (
                    SELECT group_concat(word, ' ') FROM (
                        SELECT json_extract(?5, '$[' || (((?3 + i) * 7919 + p * 104729) % 4294967291 * 48271
                            % 2147483647 % json_array_length(?5)) || ']') AS word
                        FROM position ORDER BY p)
                ) END FROM n
                """,
                [
                    .integer(count), chat, .integer(Int(last) - count), sender, .text(wordList),
                    .integer(generatedWordsPerMessage),
                ])
            return last
        }
    }

    public func messages(in chat: ChatID, _ query: HistoryQuery) async throws -> [Message] {
        let rows = try await read { connection in
            switch query {
            case .offset(let seq, let limit), .after(let seq, let limit):
                try await connection.run(
                    "SELECT \(Self.messageColumns) FROM messages WHERE chat_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                    [.integer(Int(chat.rawValue)), .integer(Int(seq)), .integer(limit)])
            case .before(let seq, let limit):
                try await connection.run(
                    """
                    SELECT * FROM (
                        SELECT \(Self.messageColumns) FROM messages WHERE chat_id = ? AND seq < ?
                        ORDER BY seq DESC LIMIT ?
                    ) ORDER BY seq
                    """, [.integer(Int(chat.rawValue)), .integer(Int(seq)), .integer(limit)])
            }
        }
        return try rows.map(Self.message)
    }

    public func message(_ id: MessageID) async throws -> Message? {
        let rows = try await read { connection in
            try await connection.run(
                "SELECT \(Self.messageColumns) FROM messages WHERE id = ?", [.integer(Int(id.rawValue))])
        }
        return try rows.first.map(Self.message)
    }

    public func chats(ofMessages ids: Set<MessageID>) async throws -> [MessageID: ChatID] {
        let rows = try await read { connection in
            try await connection.run(
                "SELECT id, chat_id FROM messages WHERE id IN (SELECT value FROM json_each(?))",
                [.text("[" + ids.map { String($0.rawValue) }.joined(separator: ",") + "]")])
        }
        return Dictionary(
            uniqueKeysWithValues: try rows.map { (MessageID(try $0.int("id")), ChatID(try $0.int("chat_id"))) })
    }

    public func changeMessage(_ id: MessageID, _ change: MessageChange) async throws -> Message? {
        let (text, deletes): (String, Bool) =
            switch change {
            case .edit(let text): (text, false)
            case .delete: ("", true)
            }
        return try await writeTransaction { connection in
            // The write transaction holds the database: the chat's next update_seq is this one's.
            let next = try await connection.run(
                """
                UPDATE chats SET last_update = last_update + 1
                WHERE id = (SELECT chat_id FROM messages WHERE id = ? AND deleted = 0)
                RETURNING last_update
                """, [.integer(Int(id.rawValue))])
            guard let updateSeq = try next.first?.int("last_update") else { return nil }
            let rows = try await connection.run(
                """
                UPDATE messages SET text = ?1, deleted = ?2,
                    edited_at = CASE WHEN ?2 THEN edited_at ELSE CAST(unixepoch('subsec') * 1000 AS INTEGER) END,
                    update_seq = ?3
                WHERE id = ?4
                RETURNING \(Self.messageColumns)
                """, [.text(text), .integer(deletes ? 1 : 0), .integer(Int(updateSeq)), .integer(Int(id.rawValue))])
            return try rows.first.map(Self.message)
        }
    }

    public func updatedMessages(in chat: ChatID, after afterUpdate: Int64, limit: Int) async throws -> [Message] {
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT \(Self.messageColumns) FROM messages
                WHERE chat_id = ? AND update_seq > ? ORDER BY update_seq LIMIT ?
                """, [.integer(Int(chat.rawValue)), .integer(Int(afterUpdate)), .integer(limit)])
        }
        return try rows.map(Self.message)
    }

    public func searchMessages(
        _ words: [String], in scope: SearchScope, before: MessageID?, limit: Int
    ) async throws -> [SearchHit] {
        // Every word quoted: FTS5 reads the query as words that must all match, never as its
        // operators (words hold only letters and digits anyway).
        let match = words.map { "\"\($0)\"" }.joined(separator: " ")
        let (scopeColumn, scopeID): (String, Int64) =
            switch scope {
            case .chatsOf(let user): ("user_id", user.rawValue)
            case .chat(let chat): ("chat_id", chat.rawValue)
            }
        let columns = Self.messageColumns.split(separator: ", ").map { "m.\($0) AS \($0)" }.joined(separator: ", ")
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT \(columns),
                       snippet(messages_search, 0, ?1, ?2, ' … ', 16) AS snippet
                FROM messages_search JOIN messages m ON m.id = messages_search.rowid
                WHERE messages_search MATCH ?3 AND m.deleted = 0
                  AND m.chat_id IN (SELECT chat_id FROM group_members WHERE \(scopeColumn) = ?4)
                  AND m.id < ?5
                ORDER BY m.id DESC LIMIT ?6
                """,
                [
                    .text(String(SearchHit.markStart)), .text(String(SearchHit.markEnd)), .text(match),
                    .integer(Int(scopeID)), .integer(Int(before?.rawValue ?? Int64.max)), .integer(limit),
                ])
        }
        return try rows.map { SearchHit(message: try Self.message($0), snippet: try $0.string("snippet")) }
    }

    private static func message(_ row: SQLiteRow) throws -> Message {
        Message(
            id: MessageID(try row.int("id")), chatID: ChatID(try row.int("chat_id")), seq: try row.int("seq"),
            senderID: UserID(try row.int("sender_id")), clientID: row.column("client_id")?.string,
            text: try row.string("text"), createdAt: try row.date("created_at"),
            replyTo: row.optionalInt("reply_to").map(MessageID.init), editedAt: row.optionalDate("edited_at"),
            deleted: try row.int("deleted") != 0, updateSeq: try row.int("update_seq"))
    }

    // MARK: Administration

    public func counts() async throws -> StoreCounts {
        let rows = try await read { connection in
            try await connection.run(
                """
                SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM chats) AS chats,
                       (SELECT count(*) FROM group_members) AS members,
                       (SELECT COALESCE(sum(last_seq), 0) FROM chats) AS messages
                """)
        }
        guard let row = rows.first else { throw StorageError.unexpected("counts returned no row") }
        return StoreCounts(
            users: try row.int("users"), chats: try row.int("chats"), members: try row.int("members"),
            messages: try row.int("messages"))
    }

    public func databaseGeneration() async throws -> String {
        let rows = try await read { connection in
            try await connection.run("SELECT generation FROM database_generation")
        }
        guard let row = rows.first else { throw StorageError.unexpected("the database has no generation") }
        return try row.string("generation")
    }

    public func generatedTokenSecret() async throws -> String {
        let rows = try await read { connection in
            try await connection.run("SELECT secret FROM generated_token_secret")
        }
        guard let row = rows.first else { throw StorageError.unexpected("the database has no generated token secret") }
        return try row.string("secret")
    }

    public func renewDatabaseGeneration() async throws -> String {
        let rows = try await write { connection in
            try await connection.run(
                """
                UPDATE database_generation
                SET generation = lower(hex(randomblob(16))), began_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
                RETURNING generation
                """)
        }
        guard let row = rows.first else { throw StorageError.unexpected("the database has no generation") }
        return try row.string("generation")
    }

    /// Writes a consistent copy of the database to the new file at `path`, while servers go on
    /// writing: `VACUUM INTO` reads one snapshot, as any read does. (Through the writer because
    /// a reader is `query_only`; this store is the backup command's own.)
    public func backup(to path: String) async throws {
        _ = try await write { connection in try await connection.run("VACUUM INTO ?", [.text(path)]) }
    }

    // MARK: Connections, transactions and errors

    /// Runs `body` on the next reader, alone. A connection's read snapshot lasts while any of
    /// its statements is active, so statements overlapping on one reader under steady load
    /// could keep it on an old snapshot indefinitely: a user just registered would not be
    /// found at log-in. One statement at a time makes each read see every commit before it.
    private func read<T>(_ body: (SQLiteConnection) async throws -> T) async throws -> T {
        let index = nextReader.withLock { index in
            defer { index = (index + 1) % readers.count }
            return index
        }
        let lease = metrics.databaseConnectionRequested()
        defer { lease.end() }
        do {
            return try await readerLocks[index].withLock {
                lease.granted()
                guard !readers[index].isClosed else { throw ChatError.storageUnavailable }
                return try await body(readers[index])
            }
        } catch {
            throw mapError(error)
        }
    }

    /// Runs one write statement (or several that need no transaction) with the write lock held.
    private func write<T>(_ body: (SQLiteConnection) async throws -> T) async throws -> T {
        let lease = metrics.databaseConnectionRequested()
        defer { lease.end() }
        do {
            return try await writeLock.withLock {
                lease.granted()
                guard !writer.isClosed else { throw ChatError.storageUnavailable }
                return try await body(writer)
            }
        } catch {
            throw mapError(error)
        }
    }

    /// Runs `body` in an immediate transaction with the write lock held.
    private func writeTransaction<T>(_ body: (SQLiteConnection) async throws -> T) async throws -> T {
        try await write { connection in
            _ = try await connection.run("BEGIN IMMEDIATE")
            do {
                let value = try await body(connection)
                _ = try await connection.run("COMMIT")
                return value
            } catch {
                _ = try? await connection.run("ROLLBACK")
                throw error
            }
        }
    }

    private func mapError(_ error: any Error) -> any Error {
        guard let error = error as? SQLiteError else { return error }
        if error.reason == .constraintUniqueFailed {
            if error.message.contains("users.name_key") { return ChatError.nameTaken }
            if error.message.contains("users.email_key") { return ChatError.emailTaken }
        }
        metrics.databaseError()
        // Busy, locked, disk full, I/O and permission failures (and their extended codes) are
        // conditions of the machine, not bugs: the request may succeed later.
        let reason = String(describing: error.reason)
        if ["busy", "locked", "full", "ioError", "cantOpen", "readOnly", "readonly"].contains(where: reason.hasPrefix) {
            logger.error("SQLite unavailable", metadata: ["error": "\(error)"])
            return ChatError.storageUnavailable
        }
        return StorageError.unexpected(String(describing: error))
    }

    static func milliseconds(_ date: Date) -> Int {
        Int((date.timeIntervalSince1970 * 1000).rounded())
    }
}

extension SQLiteRow {
    fileprivate func int(_ column: String) throws -> Int64 {
        guard let value = self.column(column)?.integer else {
            throw StorageError.corruptRow("\(column) is not an integer")
        }
        return Int64(value)
    }

    fileprivate func string(_ column: String) throws -> String {
        guard let value = self.column(column)?.string else { throw StorageError.corruptRow("\(column) is not text") }
        return value
    }

    /// Times are stored as integer Unix milliseconds.
    fileprivate func date(_ column: String) throws -> Date {
        Date(timeIntervalSince1970: Double(try int(column)) / 1000)
    }

    /// The integer in `column`, nil when it is null.
    fileprivate func optionalInt(_ column: String) -> Int64? {
        self.column(column)?.integer.map(Int64.init)
    }

    /// The instant in `column` (milliseconds since 1970), nil when it is null.
    fileprivate func optionalDate(_ column: String) -> Date? {
        optionalInt(column).map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }
}

extension SQLiteConnection {
    /// Runs one statement to completion even when the calling task is cancelled. (SQLiteNIO's
    /// async `query` skips work for cancelled tasks, which could leave a transaction open on
    /// the shared writer; its future-based API does not.)
    fileprivate func run(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        let rows: EventLoopFuture<[SQLiteRow]> = query(sql, binds)
        return try await rows.get()
    }

    /// Closes the connection even when the calling task is cancelled (as during shutdown).
    fileprivate func closeUninterrupted() async throws {
        let closed: EventLoopFuture<Void> = close()
        try await closed.get()
    }
}
