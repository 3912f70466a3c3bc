import ChatProtocol
import Foundation

/// A registered user. The password hash never leaves the storage and account layers.
public struct User: Sendable, Equatable {
    public let id: UserID
    public let name: String
    public let email: String
    public let isAdmin: Bool
    public let createdAt: Date

    public init(id: UserID, name: String, email: String, isAdmin: Bool, createdAt: Date) {
        self.id = id
        self.name = name
        self.email = email
        self.isAdmin = isAdmin
        self.createdAt = createdAt
    }
}

/// A user together with their stored password hash, as needed to check a log-in.
public struct UserCredentials: Sendable {
    public let user: User
    public let passwordHash: String

    public init(user: User, passwordHash: String) {
        self.user = user
        self.passwordHash = passwordHash
    }
}

/// What the store needs to register a user. Values are already validated and normalized.
public struct NewUser: Sendable {
    public let name: String
    public let email: String
    public let passwordHash: String

    public init(name: String, email: String, passwordHash: String) {
        self.name = name
        self.email = email
        self.passwordHash = passwordHash
    }

    /// The case-insensitive key that makes names unique (`Sergey` and `sergey` are one user).
    public var nameKey: String { User.key(for: name) }
    /// The case-insensitive key that makes emails unique.
    public var emailKey: String { User.key(for: email) }
}

extension User {
    /// The case-folded form under which names and emails are unique and searched.
    ///
    /// Computed in Swift rather than with SQL `lower()` so that SQLite (ASCII-only `lower`)
    /// and PostgreSQL (collation-dependent) agree for every alphabet.
    public static func key(for text: String) -> String {
        text.precomposedStringWithCanonicalMapping.lowercased()
    }
}
