import ChatProtocol
import ChatServer
import Foundation
import ServiceLifecycle
import Synchronization

/// A store that passes every call to another one, except the operations a test makes fail
/// as a busy or unreachable database does (``ChatError/storageUnavailable``), and message
/// appends, which wait while an ``AppendGate`` is closed (a database that does not answer yet).
public final class FaultInjectingStore: ChatStore {
    /// The operations that can be made to fail.
    public enum Operation: Sendable {
        case chatDetails
    }

    private let base: any ChatStore
    private let failing: Set<Operation>
    private let appendGate: AppendGate?

    public init(_ base: any ChatStore, failing: Set<Operation> = [], appendGate: AppendGate? = nil) {
        self.base = base
        self.failing = failing
        self.appendGate = appendGate
    }

    public func run() async throws { try await base.run() }
    public func checkConnection() async throws { try await base.checkConnection() }
    public func migrationStatus() async throws -> [MigrationStatus] { try await base.migrationStatus() }
    public func migrateUp() async throws -> [Migration] { try await base.migrateUp() }
    public func migrateDown(steps: Int) async throws -> [Migration] { try await base.migrateDown(steps: steps) }
    public func createUser(_ user: NewUser) async throws -> User { try await base.createUser(user) }

    public func credentials(loginKey: String) async throws -> UserCredentials? {
        try await base.credentials(loginKey: loginKey)
    }

    public func updatePasswordHash(_ hash: String, for user: UserID) async throws {
        try await base.updatePasswordHash(hash, for: user)
    }

    public func changePassword(_ hash: String, for user: UserID, sessionsValidFrom: Date) async throws {
        try await base.changePassword(hash, for: user, sessionsValidFrom: sessionsValidFrom)
    }

    public func sessionUser(_ user: UserID, tokenID: String, issuedAt: Date) async throws -> User? {
        try await base.sessionUser(user, tokenID: tokenID, issuedAt: issuedAt)
    }

    public func revokeToken(_ tokenID: String, of user: UserID, expiresAt: Date) async throws {
        try await base.revokeToken(tokenID, of: user, expiresAt: expiresAt)
    }

    public func users(nameKeyPrefix: String, limit: Int) async throws -> [User] {
        try await base.users(nameKeyPrefix: nameKeyPrefix, limit: limit)
    }

    public func user(_ id: UserID) async throws -> User? { try await base.user(id) }

    public func setAdmin(_ isAdmin: Bool, nameKey: String) async throws -> User? {
        try await base.setAdmin(isAdmin, nameKey: nameKey)
    }

    public func createChat(name: String, type: ChatType, creator: UserID) async throws -> Chat {
        try await base.createChat(name: name, type: type, creator: creator)
    }

    public func chat(_ id: ChatID, member: UserID) async throws -> Chat? { try await base.chat(id, member: member) }
    public func members(of chat: ChatID) async throws -> [ChatMember] { try await base.members(of: chat) }
    public func addMember(_ user: UserID, to chat: ChatID, by actor: UserID?) async throws {
        try await base.addMember(user, to: chat, by: actor)
    }

    public func removeMember(_ user: UserID, from chat: ChatID, by actor: UserID?) async throws {
        try await base.removeMember(user, from: chat, by: actor)
    }

    public func leaveChat(_ user: UserID, chat: ChatID) async throws -> UserID? {
        try await base.leaveChat(user, chat: chat)
    }

    public func membershipEvents(
        in chat: ChatID, afterSeqs: ClosedRange<Int64>, limit: Int
    ) async throws
        -> [MembershipEvent]
    {
        try await base.membershipEvents(in: chat, afterSeqs: afterSeqs, limit: limit)
    }

    public func chatSummaries(for user: UserID) async throws -> [ChatSummary] {
        try await base.chatSummaries(for: user)
    }

    public func chatDetails(for user: UserID) async throws -> [ChatDetails] {
        if failing.contains(.chatDetails) { throw ChatError.storageUnavailable }
        return try await base.chatDetails(for: user)
    }

    public func advanceReadMarker(of user: UserID, in chat: ChatID, to seq: Int64) async throws -> Int64? {
        try await base.advanceReadMarker(of: user, in: chat, to: seq)
    }

    public func appendMessages(_ messages: [NewMessage]) async throws -> [Result<AppendedMessage, ChatError>] {
        await appendGate?.passed()
        return try await base.appendMessages(messages)
    }

    public func messages(in chat: ChatID, _ query: HistoryQuery) async throws -> [Message] {
        try await base.messages(in: chat, query)
    }

    public func changeMessage(_ id: MessageID, _ change: MessageChange) async throws -> Message? {
        try await base.changeMessage(id, change)
    }

    public func updatedMessages(in chat: ChatID, after afterUpdate: Int64, limit: Int) async throws -> [Message] {
        try await base.updatedMessages(in: chat, after: afterUpdate, limit: limit)
    }

    public func message(_ id: MessageID) async throws -> Message? { try await base.message(id) }

    public func searchMessages(
        _ words: [String], in scope: SearchScope, before: MessageID?, limit: Int
    ) async throws -> [SearchHit] {
        try await base.searchMessages(words, in: scope, before: before, limit: limit)
    }

    public func chats(ofMessages ids: Set<MessageID>) async throws -> [MessageID: ChatID] {
        try await base.chats(ofMessages: ids)
    }

    public func counts() async throws -> StoreCounts { try await base.counts() }
    public func databaseGeneration() async throws -> String { try await base.databaseGeneration() }
    public func generatedTokenSecret() async throws -> String { try await base.generatedTokenSecret() }
    public func renewDatabaseGeneration() async throws -> String { try await base.renewDatabaseGeneration() }
}

/// Holds message appends (``FaultInjectingStore``) until the test opens it.
public final class AppendGate: Sendable {
    private let state = Mutex<(isOpen: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    /// Lets every waiting append through, and every later one.
    public func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func passed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let isOpen = state.withLock { state in
                if !state.isOpen { state.waiters.append(continuation) }
                return state.isOpen
            }
            if isOpen { continuation.resume() }
        }
    }
}
