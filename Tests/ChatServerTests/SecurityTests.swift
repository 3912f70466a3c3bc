import ChatProtocol
import ChatServer
import Foundation
import JWTKit
import Testing

@Suite("Password hashing")
struct PasswordHasherTests {
    let bcrypt = PasswordHasher(algorithm: .bcrypt, bcryptCost: 4, pbkdf2Iterations: 1000)
    let pbkdf2 = PasswordHasher(algorithm: .pbkdf2SHA256, bcryptCost: 4, pbkdf2Iterations: 1000)

    @Test(arguments: [PasswordHashAlgorithm.bcrypt, .pbkdf2SHA256])
    func hashesVerifyTheirPasswordOnly(_ algorithm: PasswordHashAlgorithm) async throws {
        let hasher = algorithm == .bcrypt ? bcrypt : pbkdf2
        let hash = try await hasher.hash("correct horse")
        #expect(hash.hasPrefix(algorithm == .bcrypt ? "$2b$04$" : "$pbkdf2-sha256$i=1000$"))
        #expect(try await hasher.verify("correct horse", against: hash))
        #expect(try await !hasher.verify("correct horsE", against: hash))
        #expect(try await hasher.hash("correct horse") != hash, "every hash has its own salt")
    }

    @Test func hashesOfEitherAlgorithmVerifyAfterASwitch() async throws {
        let old = try await pbkdf2.hash("s3cret-pass")
        #expect(try await bcrypt.verify("s3cret-pass", against: old))
        #expect(bcrypt.needsUpgrade(old, password: "s3cret-pass"))
        let current = try await bcrypt.hash("s3cret-pass")
        #expect(!bcrypt.needsUpgrade(current, password: "s3cret-pass"))
        let stronger = PasswordHasher(algorithm: .bcrypt, bcryptCost: 5, pbkdf2Iterations: 1000)
        #expect(stronger.needsUpgrade(current, password: "s3cret-pass"))
    }

    @Test func bcryptNeverComparesATruncatedPassword() async throws {
        let long = String(repeating: "a", count: 80)
        let hash = try await pbkdf2.hash(long)
        #expect(try await pbkdf2.verify(long, against: hash))
        // Too long for bcrypt: the hash stays PBKDF2 instead of being upgraded to a truncating one.
        #expect(!bcrypt.needsUpgrade(hash, password: long))
        let bcryptHash = try await bcrypt.hash(String(repeating: "a", count: 72))
        #expect(try await !bcrypt.verify(long, against: bcryptHash))
        #expect(try await !bcrypt.verify("aaaa\u{0}", against: bcryptHash))
    }

    @Test(arguments: ["", "garbage", "$2b$xx$abc", "$pbkdf2-sha256$i=0$AA==$AA==", "$pbkdf2-sha256$i=10$!!$AA=="])
    func malformedStoredHashesNeverMatch(_ stored: String) async throws {
        #expect(try await !bcrypt.verify("anything", against: stored))
    }
}

@Suite("Session tokens")
struct TokenServiceTests {
    /// Long enough for HS384 too, so that the algorithm-confusion token can be made.
    static let secret = String(repeating: "0123456789abcdef", count: 4)

    func service(lifetime: Duration = .seconds(3600)) async -> TokenService {
        await TokenService(secret: Self.secret, lifetime: lifetime)
    }

    @Test func issuedTokensVerify() async throws {
        let tokens = await service()
        let issued = try await tokens.issue(for: UserID(42))
        let verified = try await tokens.verify(issued.token)
        #expect(verified.userID == 42 && verified.tokenID == issued.tokenID)
        #expect(abs(verified.expiresAt.timeIntervalSince(issued.expiresAt)) < 1)
        #expect(try await tokens.issue(for: UserID(42)).tokenID != issued.tokenID, "every token has its own jti")
    }

    @Test func expiredTokensAreRefused() async throws {
        let tokens = await service(lifetime: .seconds(60))
        let old = try await tokens.issue(for: UserID(1), now: Date().addingTimeInterval(-120))
        await #expect(throws: ChatError.notAuthenticated) { try await tokens.verify(old.token) }
    }

    @Test func tamperedTokensAreRefused() async throws {
        let tokens = await service()
        let parts = try await tokens.issue(for: UserID(1)).token.split(separator: ".").map(String.init)
        var claims = try JSONSerialization.jsonObject(with: try #require(Data(base64URL: parts[1]))) as? [String: Any]
        claims?["sub"] = "2"
        let forgedPayload = try JSONSerialization.data(withJSONObject: claims ?? [:]).base64URLEncoded
        await #expect(throws: ChatError.notAuthenticated) {
            try await tokens.verify([parts[0], forgedPayload, parts[2]].joined(separator: "."))
        }
    }

    @Test func unsignedTokensAreRefused() async throws {
        let tokens = await service()
        let parts = try await tokens.issue(for: UserID(1)).token.split(separator: ".").map(String.init)
        let none = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64URLEncoded
        for token in ["\(none).\(parts[1]).", "\(none).\(parts[1])", "\(none).\(parts[1]).\(parts[2])"] {
            await #expect(throws: ChatError.notAuthenticated) { try await tokens.verify(token) }
        }
    }

    @Test func tokensSignedAnotherWayAreRefused() async throws {
        let tokens = await service()
        let payload = TestClaims(
            sub: "1", exp: .init(value: Date().addingTimeInterval(600)), jti: "x", iat: .init(value: Date()))
        let otherAlgorithm = await JWTKeyCollection().add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha384)
        let otherKey = await JWTKeyCollection().add(
            hmac: HMACKey(from: String(repeating: "f", count: 64)), digestAlgorithm: .sha256)
        let foreignKid = await JWTKeyCollection().add(
            hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256, kid: "other")
        var withJKU = JWTHeader()
        withJKU.jku = "https://attacker.example/keys.json"
        let forged = [
            try await otherAlgorithm.sign(payload),
            try await otherKey.sign(payload),
            // Signed with our secret, but naming other keys: not a token this server made.
            try await foreignKid.sign(payload, kid: "other"),
            try await JWTKeyCollection().add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
                .sign(payload, header: withJKU),
        ]
        for token in forged {
            await #expect(throws: ChatError.notAuthenticated) { try await tokens.verify(token) }
        }
    }

    @Test func tokensWithoutExpiryOrIDAreRefused() async throws {
        let tokens = await service()
        let keys = await JWTKeyCollection().add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        let noExpiry = try await keys.sign(PartialClaims(sub: "1", jti: "x"))
        await #expect(throws: ChatError.notAuthenticated) { try await tokens.verify(noExpiry) }
        for garbage in ["", "a.b.c", "not a token"] {
            await #expect(throws: ChatError.notAuthenticated) { try await tokens.verify(garbage) }
        }
    }
}

private struct TestClaims: JWTPayload {
    var sub: String
    var exp: ExpirationClaim
    var jti: String
    var iat: IssuedAtClaim
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

private struct PartialClaims: JWTPayload {
    var sub: String
    var jti: String
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

extension Data {
    init?(base64URL: String) {
        var text = base64URL.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        text += String(repeating: "=", count: (4 - text.count % 4) % 4)
        self.init(base64Encoded: text)
    }

    var base64URLEncoded: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
