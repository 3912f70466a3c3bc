import ChatProtocol
import Foundation
import ServiceLifecycle

/// Everything the server keeps in its database: the domain's storage interfaces
/// (``AccountStore``, ``ChatDirectory``, ``MessageLog``) and what operating the database takes
/// (schema, generation, counts). Implemented by ``PostgresChatStore`` and ``SQLiteChatStore``;
/// both pass the same contract suite.
///
/// Rules that must hold under concurrency are enforced here, atomically: unique names and
/// emails, a PRIVATE chat's two-member limit, gap-free `seq` per chat, and duplicate-free
/// `(sender, client_id)`. Failures surface as ``ChatError`` values (or ``MigrationError``);
/// nothing above this layer sees a driver error. A store is a `Service`: its `run()` keeps
/// its connections open until graceful shutdown.
public protocol ChatStore: AccountStore, ChatDirectory, MessageLog, Service {
    /// Connects and runs a trivial query, failing fast with ``StorageError/unreachable(_:)``
    /// (saying why: refused, bad password, missing database) instead of queueing requests
    /// behind a database that cannot be reached.
    func checkConnection() async throws

    // MARK: Schema

    /// Every known migration with when it was applied, if it was.
    func migrationStatus() async throws -> [MigrationStatus]
    /// Applies all pending migrations in one transaction and returns them. Safe to call from
    /// several processes at once.
    @discardableResult
    func migrateUp() async throws -> [Migration]
    /// Reverts the newest `steps` applied migrations in one transaction and returns them.
    @discardableResult
    func migrateDown(steps: Int) async throws -> [Migration]
    /// The database's generation: a random id made with the database and replaced after a
    /// restore, so that clients know their positions are void (docs/operations.md, "Backups").
    func databaseGeneration() async throws -> String
    /// Replaces the generation with a new random one and returns it.
    func renewDatabaseGeneration() async throws -> String
    /// The token secret the database generated (migration 0008), which signs sessions when
    /// `CHAT_JWT_SECRET` is not set: every node on one database reads the same.
    func generatedTokenSecret() async throws -> String

    // MARK: Administration

    /// How many rows the main tables hold.
    func counts() async throws -> StoreCounts
}

/// The bulk path `chatsim history` fills a chat with, outside the production interfaces.
public protocol BulkMessageFill: Sendable {
    /// Stores `count` generated messages (no client id) from `sender` at the chat's next
    /// `seq`s in one transaction: the bulk path `chatsim history` and `chatsim search` fill a
    /// chat with. Each text is `"message <seq>"`, or with `words` given,
    /// ``generatedWordsPerMessage`` of them picked by the message's `seq` and position
    /// (``generatedWordIndex(seq:position:count:)``). Publishes nothing, so run it before
    /// clients follow the chat.
    /// - Returns: the chat's new last `seq`.
    /// - Throws: ``ChatError/notAMember`` when the sender is not a member.
    func appendGeneratedMessages(
        _ count: Int, to chat: ChatID, from sender: UserID, words: [String]
    ) async throws -> Int64
    /// Refreshes the planner's statistics after a bulk fill (`ANALYZE`), as the database's own
    /// maintenance would soon after so many new rows: a benchmark then measures the plans a
    /// running server gets, not the ones for an empty table.
    func refreshStatistics() async throws
}

extension BulkMessageFill {
    /// `"message <seq>"` texts.
    public func appendGeneratedMessages(_ count: Int, to chat: ChatID, from sender: UserID) async throws -> Int64 {
        try await appendGeneratedMessages(count, to: chat, from: sender, words: [])
    }
}

/// Words in each generated text made of words.
public let generatedWordsPerMessage = 8

/// Which of `count` words a generated text has at `position` (1...8): a fixed scramble of
/// `seq` and `position`, computed the same way in SQL by both stores and small enough for
/// SQLite's 64-bit integers.
public func generatedWordIndex(seq: Int64, position: Int64, count: Int) -> Int {
    Int(((seq * 7919 + position * 104_729) % 4_294_967_291) * 48_271 % 2_147_483_647 % Int64(count))
}

/// Row counts reported by the admin sync endpoint.
public struct StoreCounts: Sendable, Equatable {
    public let users: Int64
    public let chats: Int64
    public let members: Int64
    public let messages: Int64

    public init(users: Int64, chats: Int64, members: Int64, messages: Int64) {
        self.users = users
        self.chats = chats
        self.members = members
        self.messages = messages
    }
}
