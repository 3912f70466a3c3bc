import Foundation

/// Body of `POST /user`.
public struct CreateUserRequest: Codable, Sendable, Equatable {
    public var name: String
    public var email: String
    public var password: String

    public init(name: String, email: String, password: String) {
        self.name = name
        self.email = email
        self.password = password
    }
}

/// The caller's own account (`POST /user`, `GET /users/me`). Never carries the password hash.
/// Body of `POST /user/password`.
public struct ChangePasswordRequest: Codable, Sendable, Equatable {
    public var currentPassword: String
    public var newPassword: String

    public init(currentPassword: String, newPassword: String) {
        self.currentPassword = currentPassword
        self.newPassword = newPassword
    }

    enum CodingKeys: String, CodingKey {
        case currentPassword = "current_password"
        case newPassword = "new_password"
    }
}

public struct AccountPayload: Codable, Sendable, Equatable {
    public var id: UserID
    public var name: String
    public var email: String
    public var isAdmin: Bool
    @ISOTimestamp public var createdAt: Date

    public init(id: UserID, name: String, email: String, isAdmin: Bool, createdAt: Date) {
        self.id = id
        self.name = name
        self.email = email
        self.isAdmin = isAdmin
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, email
        case isAdmin = "is_admin"
        case createdAt = "created_at"
    }
}

/// Another user as others see them (`GET /users?q=`): no email.
public struct UserPayload: Codable, Sendable, Equatable {
    public var id: UserID
    public var name: String

    public init(id: UserID, name: String) {
        self.id = id
        self.name = name
    }
}

/// Response of `POST /auth/login`, the OAuth2 password grant's token response.
public struct TokenPayload: Codable, Sendable, Equatable {
    public var accessToken: String
    public var tokenType: String
    /// Lifetime of the token in seconds.
    public var expiresIn: Int

    public init(accessToken: String, tokenType: String = "bearer", expiresIn: Int) {
        self.accessToken = accessToken
        self.tokenType = tokenType
        self.expiresIn = expiresIn
    }

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case tokenType = "token_type"
        case expiresIn = "expires_in"
    }
}
