import ChatProtocol
import Foundation

/// Users, their credentials and their sessions: what ``AccountService`` keeps in the database.
/// Names and emails are unique ignoring case, enforced atomically.
public protocol AccountStore: Sendable {
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
}
