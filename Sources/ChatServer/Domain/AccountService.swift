import ChatProtocol
import Foundation
import Logging

/// An authenticated request's user and the token that proved it.
public struct Session: Sendable, Equatable {
    public let user: User
    public let token: SessionToken

    public init(user: User, token: SessionToken) {
        self.user = user
        self.token = token
    }
}

/// Registration, log-in, sessions and user lookup.
public struct AccountService: Sendable {
    let store: any AccountStore
    let hasher: PasswordHasher
    let tokens: TokenService
    let rules: InputRules
    /// Where revoked sessions are announced, so their open connections close.
    let events: (any ChatEvents)?
    /// Failed log-ins so far, per account and address.
    let throttle: LoginThrottle
    /// A hash of a random password, checked when a log-in names no user so that unknown
    /// users and wrong passwords take the same time.
    private let dummyHash: String
    private let logger: Logger

    /// Most users returned by one search.
    public static let maxSearchResults = 50

    public init(
        store: any AccountStore, hasher: PasswordHasher, tokens: TokenService, rules: InputRules,
        events: (any ChatEvents)? = nil,
        throttle: LoginThrottle = LoginThrottle(limits: .init(), failures: LocalLoginFailures()), logger: Logger
    ) async throws {
        self.store = store
        self.hasher = hasher
        self.tokens = tokens
        self.rules = rules
        self.events = events
        self.throttle = throttle
        self.logger = logger
        self.dummyHash = try await hasher.hash(UUID().uuidString)
    }

    /// Registers a user after validating every field against ``InputRules``.
    public func register(name: String, email: String, password: String) async throws -> User {
        let name = try rules.userName(name)
        let email = try rules.email(email)
        let password = try rules.newPassword(password, maxBytes: hasher.algorithm.maxPasswordBytes)
        return try await store.createUser(
            NewUser(name: name, email: email, passwordHash: try await hasher.hash(password)))
    }

    /// Checks a name-or-email and password and issues a session token. Upgrades the stored
    /// hash when it was made with another algorithm or cost than the configured one.
    /// - Parameter address: the client's address, for the per-address failure limit.
    /// - Throws: ``ChatError/invalidCredentials`` for an unknown user or a wrong password alike;
    ///   ``ChatError/tooManyLoginAttempts(retryAfterSeconds:)`` past the ``LoginThrottle``'s limits,
    ///   before the password is checked.
    public func logIn(login: String, password: String, address: String? = nil) async throws -> (User, SessionToken) {
        let loginKey = User.key(for: login.trimmingCharacters(in: .whitespacesAndNewlines))
        try await checkThrottle(account: loginKey, address: address)
        do {
            let user = try await checkCredentials(loginKey: loginKey, password: password)
            try await throttle.recordSuccess(account: loginKey)
            return (user, try await tokens.issue(for: user.id))
        } catch ChatError.invalidCredentials {
            try await throttle.recordFailure(account: loginKey, address: address)
            throw ChatError.invalidCredentials
        }
    }

    /// Changes the session's user's password after checking the current one, ends every
    /// session of theirs (closing their connections) and returns a new token for the caller.
    /// Wrong current passwords count towards the log-in limits.
    /// - Throws: ``ChatError/wrongPassword``; ``ChatError/invalidField(_:_:)`` for a new
    ///   password the rules refuse; ``ChatError/tooManyLoginAttempts(retryAfterSeconds:)``.
    public func changePassword(of session: Session, current: String, new: String) async throws -> SessionToken {
        let user = session.user
        let loginKey = User.key(for: user.name)
        try await checkThrottle(account: loginKey, address: nil)
        let newPassword = try rules.newPassword(new, maxBytes: hasher.algorithm.maxPasswordBytes)
        do {
            _ = try await checkCredentials(loginKey: loginKey, password: current)
        } catch ChatError.invalidCredentials {
            try await throttle.recordFailure(account: loginKey, address: nil)
            throw ChatError.wrongPassword
        }
        // Tokens carry whole seconds: everything issued up to this second ends (a log-in
        // elsewhere within this very second too), and the new token is dated one second on.
        let validFrom = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down) + 1)
        try await store.changePassword(try await hasher.hash(newPassword), for: user.id, sessionsValidFrom: validFrom)
        events?.sessionsEnded(of: user.id)
        logger.info("Password changed; sessions ended", metadata: ["chat.user_id": "\(user.id)"])
        return try await tokens.issue(for: user.id, now: validFrom)
    }

    /// - Throws: ``ChatError/tooManyLoginAttempts(retryAfterSeconds:)`` past the limits.
    private func checkThrottle(account: String, address: String?) async throws {
        guard let wait = try await throttle.retryAfter(account: account, address: address) else { return }
        throw ChatError.tooManyLoginAttempts(retryAfterSeconds: max(1, Int((wait / .seconds(1)).rounded(.up))))
    }

    /// The user whose password this is, after upgrading an outdated hash.
    private func checkCredentials(loginKey: String, password: String) async throws -> User {
        let password = password.precomposedStringWithCanonicalMapping
        guard InputRules.couldBeStoredName(loginKey), let credentials = try await store.credentials(loginKey: loginKey)
        else {
            _ = try await hasher.verify(password, against: dummyHash)
            throw ChatError.invalidCredentials
        }
        guard try await hasher.verify(password, against: credentials.passwordHash) else {
            throw ChatError.invalidCredentials
        }
        let user = credentials.user
        if hasher.needsUpgrade(credentials.passwordHash, password: password) {
            try await store.updatePasswordHash(try await hasher.hash(password), for: user.id)
            logger.info("Upgraded password hash", metadata: ["chat.user_id": "\(user.id)"])
        }
        return user
    }

    /// The session behind a token.
    /// - Throws: ``ChatError/notAuthenticated`` when the token is invalid, expired or revoked,
    ///   or its user no longer exists.
    public func authenticate(token: String) async throws -> Session {
        let verified = try await tokens.verify(token)
        guard
            let user = try await store.sessionUser(
                verified.userID, tokenID: verified.tokenID, issuedAt: verified.issuedAt)
        else {
            throw ChatError.notAuthenticated
        }
        return Session(user: user, token: verified)
    }

    /// Revokes the session's token on the server, so it stops working before it expires, and
    /// closes the WebSocket connections opened with it.
    public func logOut(_ session: Session) async throws {
        try await store.revokeToken(session.token.tokenID, of: session.user.id, expiresAt: session.token.expiresAt)
        events?.sessionRevoked(tokenID: session.token.tokenID)
    }

    /// Users whose name starts with `query` (case-insensitive), by name.
    public func searchUsers(query: String, limit: Int) async throws -> [User] {
        guard (1...Self.maxSearchResults).contains(limit) else {
            throw ChatError.invalidField("limit", "must be from 1 to \(Self.maxSearchResults)")
        }
        let prefix = User.key(for: query.trimmingCharacters(in: .whitespacesAndNewlines))
        guard prefix.count <= InputRules.maxNameLength, InputRules.couldBeStoredName(prefix) else { return [] }
        return try await store.users(nameKeyPrefix: prefix, limit: limit)
    }

    /// Grants or revokes admin rights by user name.
    public func setAdmin(_ isAdmin: Bool, name: String) async throws -> User {
        let nameKey = User.key(for: name)
        guard InputRules.couldBeStoredName(nameKey), let user = try await store.setAdmin(isAdmin, nameKey: nameKey)
        else {
            throw ChatError.userNotFound
        }
        return user
    }
}
