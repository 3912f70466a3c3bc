import ChatProtocol
import Foundation
import ServiceLifecycle

/// Everything the server keeps in its database. Implemented by ``PostgresChatStore`` and
/// ``SQLiteChatStore``; both pass the same contract suite.
///
/// Rules that must hold under concurrency are enforced here, atomically: unique names and
/// emails, a PRIVATE chat's two-member limit, gap-free `seq` per chat, and duplicate-free
/// `(sender, client_id)`. Failures surface as ``ChatError`` values (or ``MigrationError``);
/// nothing above this layer sees a driver error. A store is a `Service`: its `run()` keeps
/// its connections open until graceful shutdown.
public protocol ChatStore: Service {
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

    // MARK: Users

    /// Registers a user. Throws ``ChatError/nameTaken`` or ``ChatError/emailTaken``.
    func createUser(_ user: NewUser) async throws -> User
    /// The user whose name or email has the case-folded key `loginKey`, with their hash.
    func credentials(loginKey: String) async throws -> UserCredentials?
    func updatePasswordHash(_ hash: String, for user: UserID) async throws
    /// Replaces the password hash and refuses from now on every token issued before
    /// `sessionsValidFrom`.
    func changePassword(_ hash: String, for user: UserID, sessionsValidFrom: Date) async throws
    /// The user behind a session, or nil when the user is gone, the token was revoked, or it
    /// was issued before the user's sessions were last ended (a password change).
    func sessionUser(_ user: UserID, tokenID: String, issuedAt: Date) async throws -> User?
    /// Puts a token on the deny-list until it expires (and forgets tokens already expired).
    func revokeToken(_ tokenID: String, of user: UserID, expiresAt: Date) async throws
    /// Users whose case-folded name starts with `nameKeyPrefix`, by name.
    func users(nameKeyPrefix: String, limit: Int) async throws -> [User]
    /// The user with this id; nil when there is none.
    func user(_ id: UserID) async throws -> User?
    /// Grants or revokes admin rights; nil when no user has that name.
    func setAdmin(_ isAdmin: Bool, nameKey: String) async throws -> User?

    // MARK: Chats

    /// Creates a chat and its group with `creator` as creator and first member.
    func createChat(name: String, type: ChatType, creator: UserID) async throws -> Chat
    /// The chat, if `member` is one of its members.
    func chat(_ id: ChatID, member: UserID) async throws -> Chat?
    /// The chat's members, by name.
    func members(of chat: ChatID) async throws -> [ChatMember]
    /// Adds a member whose read marker starts at the chat's current end, and records it as a
    /// ``MembershipEvent`` by `actor` in the same transaction. Throws
    /// ``ChatError/chatNotFound``, ``ChatError/userNotFound``, ``ChatError/alreadyMember``,
    /// or ``ChatError/privateChatFull`` (also when adds race: a PRIVATE chat never holds 3).
    func addMember(_ user: UserID, to chat: ChatID, by actor: UserID?) async throws
    /// Removes a member and records it as a ``MembershipEvent`` by `actor` in the same
    /// transaction. Throws ``ChatError/notAMember`` when `user` is not one.
    func removeMember(_ user: UserID, from chat: ChatID, by actor: UserID?) async throws
    /// The chat's membership events that come after messages `afterSeqs` (0: before the
    /// first message), in the order they happened, at most `limit`.
    func membershipEvents(
        in chat: ChatID, afterSeqs: ClosedRange<Int64>, limit: Int
    ) async throws
        -> [MembershipEvent]
    /// The chats `user` belongs to, newest activity first.
    func chatSummaries(for user: UserID) async throws -> [ChatSummary]
    /// The chats `user` belongs to with their members, by chat id.
    func chatDetails(for user: UserID) async throws -> [ChatDetails]
    /// Moves `user`'s read marker in `chat` forward to `seq`, or to the chat's last `seq` if
    /// that is lower. Never moves it back.
    /// - Returns: the new marker, or nil when it did not move.
    /// - Throws: ``ChatError/notAMember`` when `user` is not a member.
    func advanceReadMarker(of user: UserID, in chat: ChatID, to seq: Int64) async throws -> Int64?

    // MARK: Messages

    /// Stores messages to one chat (the first one's) in one transaction, in order, under its next
    /// `seq`s, and moves each sender's read marker to their last one. A repeated
    /// `(sender, client_id)` yields the original with `duplicate: true`, writes nothing and
    /// consumes no `seq`; a sender who is not a member yields ``ChatError/notAMember``.
    /// The `(sender, client_id)` pairs must be distinct within one call.
    /// - Returns: one result per message, in order.
    /// - Throws: when storing failed. Some of the messages may have been stored by then;
    ///   retrying with the same client ids is safe.
    func appendMessages(_ messages: [NewMessage]) async throws -> [Result<AppendedMessage, ChatError>]
    /// A page of a chat's messages in `seq` order.
    func messages(in chat: ChatID, _ query: HistoryQuery) async throws -> [Message]
    /// The messages after `afterSeq` (at most `limit`, in `seq` order) and the chat's members
    /// as of no earlier than the newest of them: a member removed before one of these messages
    /// was stored is not among the members. What the hub reads to fill a gap.
    func messagesAndMembers(
        in chat: ChatID, after afterSeq: Int64, limit: Int
    ) async throws -> (messages: [Message], members: Set<UserID>)
    /// Stores `count` generated messages (`"message <seq>"`, no client id) from `sender` at
    /// the chat's next `seq`s in one transaction: the bulk path `chatsim history` fills a
    /// chat with. Publishes nothing, so run it before clients follow the chat.
    /// - Returns: the chat's new last `seq`.
    /// - Throws: ``ChatError/notAMember`` when the sender is not a member.
    func appendGeneratedMessages(_ count: Int, to chat: ChatID, from sender: UserID) async throws -> Int64

    // MARK: Administration

    /// How many rows the main tables hold.
    func counts() async throws -> StoreCounts
}

extension ChatStore {
    /// Two reads, the members after the messages.
    public func messagesAndMembers(
        in chat: ChatID, after afterSeq: Int64, limit: Int
    ) async throws -> (messages: [Message], members: Set<UserID>) {
        let messages = try await self.messages(in: chat, .after(seq: afterSeq, limit: limit))
        return (messages, Set(try await members(of: chat).map(\.userID)))
    }

    /// Adds a member on no member's behalf (tests, tools): ``addMember(_:to:by:)``.
    public func addMember(_ user: UserID, to chat: ChatID) async throws {
        try await addMember(user, to: chat, by: nil)
    }

    /// Removes a member on no member's behalf (tests, tools): ``removeMember(_:from:by:)``.
    public func removeMember(_ user: UserID, from chat: ChatID) async throws {
        try await removeMember(user, from: chat, by: nil)
    }

    /// Stores one message: ``appendMessages(_:)`` with a batch of one.
    /// - Throws: ``ChatError/notAMember`` when the sender is not a member.
    public func appendMessage(_ message: NewMessage) async throws -> AppendedMessage {
        guard let result = try await appendMessages([message]).first else {
            throw StorageError.unexpected("appendMessages returned no result")
        }
        return try result.get()
    }
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
