import ChatProtocol
import Crypto
import Foundation
import JWTKit
import Synchronization

/// A signed session token and the facts it carries.
public struct SessionToken: Sendable, Equatable {
    /// The compact JWT, as sent in the cookie or the `Authorization: Bearer` header.
    public let token: String
    /// The token's `jti`: what logout puts on the deny-list.
    public let tokenID: String
    public let userID: UserID
    public let expiresAt: Date
    /// When it was issued, in whole seconds.
    public let issuedAt: Date
}

/// Issues and checks HS256 JWT session tokens (`sub`, `iat`, `exp`, `jti`).
///
/// Checking covers the signature, the algorithm (only HS256 with this server's key: `none`,
/// other algorithms and foreign `kid`s are refused) and expiry. Revocation lives in the
/// store and is checked by ``AccountService``.
public final class TokenService: Sendable {
    private let keys = JWTKeyCollection()
    private let keyFingerprint = Mutex<String?>(nil)
    /// How long an issued token stays valid.
    public let lifetime: Duration

    /// - Parameter secret: the signing key; nil when it comes from the database, given later
    ///   with ``use(secret:)``. Until then no token is issued or accepted.
    public init(secret: String?, lifetime: Duration) async {
        self.lifetime = lifetime
        if let secret { await use(secret: secret) }
    }

    /// Signs and verifies with `secret` from now on.
    public func use(secret: String) async {
        await keys.add(hmac: HMACKey(from: Array(secret.utf8)), digestAlgorithm: .sha256)
        keyFingerprint.withLock { $0 = Self.fingerprint(of: secret) }
    }

    /// Tells whether two nodes sign with the same key without revealing it: 16 hex digits of
    /// an HMAC-SHA256 of a fixed label, keyed by the secret. Nil before a key is set.
    public var fingerprint: String? { keyFingerprint.withLock { $0 } }

    static func fingerprint(of secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(
            for: Data("chat-server token key fingerprint".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return code.prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Issues a new token for `userID`, valid for ``lifetime`` from `now`.
    public func issue(for userID: UserID, now: Date = Date()) async throws -> SessionToken {
        // JWT times are whole seconds.
        let now = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let expiresAt = now.addingTimeInterval(TimeInterval(lifetime.components.seconds))
        let claims = SessionClaims(
            subject: .init(value: String(userID.rawValue)),
            issuedAt: .init(value: now),
            expiration: .init(value: expiresAt),
            id: .init(value: UUID().uuidString.lowercased()))
        let token = try await keys.sign(claims)
        return SessionToken(
            token: token, tokenID: claims.id.value, userID: userID, expiresAt: expiresAt, issuedAt: now)
    }

    /// Verifies a token's signature, algorithm and expiry.
    /// - Throws: ``ChatError/notAuthenticated`` for any token that is not valid.
    public func verify(_ token: String) async throws -> SessionToken {
        guard Self.hasOwnHeader(token) else { throw ChatError.notAuthenticated }
        let claims: SessionClaims
        do {
            claims = try await keys.verify(token, as: SessionClaims.self)
        } catch {
            throw ChatError.notAuthenticated
        }
        guard let userID = UserID(claims.subject.value) else { throw ChatError.notAuthenticated }
        return SessionToken(
            token: token, tokenID: claims.id.value, userID: userID, expiresAt: claims.expiration.value,
            issuedAt: claims.issuedAt.value)
    }
}

extension TokenService {
    /// Header fields that point at other keys. This server signs with one key and never
    /// sets them, so a token carrying any of them was not made here.
    private static let foreignKeyFields: Set<String> = ["kid", "jku", "jwk", "x5u", "x5c", "x5t", "crit"]

    /// True when the token's header is the one this server writes: `alg` HS256 and no
    /// pointer to another key.
    static func hasOwnHeader(_ token: String) -> Bool {
        guard let encoded = token.split(separator: ".", omittingEmptySubsequences: false).first else { return false }
        var base64 = encoded.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            let header = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return false }
        return header["alg"] as? String == "HS256" && foreignKeyFields.isDisjoint(with: header.keys)
    }
}

/// The registered claims of a session token. Decoding fails when any of them is missing.
private struct SessionClaims: JWTPayload {
    var subject: SubjectClaim
    var issuedAt: IssuedAtClaim
    var expiration: ExpirationClaim
    var id: IDClaim

    enum CodingKeys: String, CodingKey {
        case subject = "sub"
        case issuedAt = "iat"
        case expiration = "exp"
        case id = "jti"
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try expiration.verifyNotExpired()
    }
}
