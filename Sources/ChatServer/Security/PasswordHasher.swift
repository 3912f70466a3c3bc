import Crypto
import CryptoExtras
import Foundation
import HummingbirdBcrypt
import NIOPosix

/// The password hash algorithms the server writes. Stored hashes name their algorithm, so
/// hashes written under an earlier setting keep verifying after a switch.
public enum PasswordHashAlgorithm: String, Sendable, CaseIterable {
    /// bcrypt (`$2b$12$...`); its input is limited to 72 bytes.
    case bcrypt
    /// PBKDF2-HMAC-SHA256 (`$pbkdf2-sha256$i=600000$salt$hash`).
    case pbkdf2SHA256 = "pbkdf2-sha256"

    /// The longest password, in UTF-8 bytes, the algorithm hashes without truncating it.
    public var maxPasswordBytes: Int {
        switch self {
        case .bcrypt: 72
        case .pbkdf2SHA256: 1024
        }
    }
}

/// Hashes and verifies passwords off the event loops (on `NIOThreadPool.singleton`), with the
/// algorithm and work factor from configuration.
public struct PasswordHasher: Sendable {
    public let algorithm: PasswordHashAlgorithm
    /// bcrypt's log2 work factor (4...31).
    public let bcryptCost: Int
    /// PBKDF2 iteration count.
    public let pbkdf2Iterations: Int

    public init(algorithm: PasswordHashAlgorithm, bcryptCost: Int, pbkdf2Iterations: Int) {
        self.algorithm = algorithm
        self.bcryptCost = bcryptCost
        self.pbkdf2Iterations = pbkdf2Iterations
    }

    /// Hashes a password with the configured algorithm.
    public func hash(_ password: String) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { try hashNow(password) }
    }

    /// Checks a password against a stored hash of any supported algorithm. A malformed or
    /// unknown stored hash never matches.
    public func verify(_ password: String, against storedHash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Self.verifyNow(password, against: storedHash) }
    }

    /// True when `storedHash` was written with another algorithm or work factor than the
    /// configured one, and `password` fits the configured algorithm's input limit.
    public func needsUpgrade(_ storedHash: String, password: String) -> Bool {
        guard password.utf8.count <= algorithm.maxPasswordBytes else { return false }
        switch StoredHash(storedHash) {
        case .bcrypt(let cost): return algorithm != .bcrypt || cost != bcryptCost
        case .pbkdf2SHA256(let iterations, _, _):
            return algorithm != .pbkdf2SHA256 || iterations != pbkdf2Iterations
        case nil: return true
        }
    }

    private func hashNow(_ password: String) throws -> String {
        switch algorithm {
        case .bcrypt:
            return Bcrypt.hash(password, cost: UInt8(bcryptCost))
        case .pbkdf2SHA256:
            let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
            let derived = try Self.pbkdf2(password, salt: salt, iterations: pbkdf2Iterations)
            return
                "$pbkdf2-sha256$i=\(pbkdf2Iterations)$\(Data(salt).base64EncodedString())$\(Data(derived).base64EncodedString())"
        }
    }

    private static func verifyNow(_ password: String, against storedHash: String) -> Bool {
        switch StoredHash(storedHash) {
        case .bcrypt:
            // bcrypt reads its input as a C string: a NUL would end it early.
            guard !password.utf8.contains(0), password.utf8.count <= PasswordHashAlgorithm.bcrypt.maxPasswordBytes
            else { return false }
            return Bcrypt.verify(password, hash: storedHash)
        case .pbkdf2SHA256(let iterations, let salt, let expected):
            guard let derived = try? pbkdf2(password, salt: salt, iterations: iterations) else { return false }
            return constantTimeEquals(derived, expected)
        case nil:
            return false
        }
    }

    private static func pbkdf2(_ password: String, salt: [UInt8], iterations: Int) throws -> [UInt8] {
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 32,
            unsafeUncheckedRounds: iterations)
        return key.withUnsafeBytes { Array($0) }
    }

    private static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return zip(lhs, rhs).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// A stored hash, parsed just enough to know its algorithm and parameters.
private enum StoredHash {
    case bcrypt(cost: Int)
    case pbkdf2SHA256(iterations: Int, salt: [UInt8], hash: [UInt8])

    init?(_ text: String) {
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        // "$2b$12$<53 chars>" splits into ["", "2b", "12", "<salt+hash>"].
        if fields.count == 4, ["2a", "2b", "2y"].contains(fields[1]), let cost = Int(fields[2]) {
            self = .bcrypt(cost: cost)
            return
        }
        // "$pbkdf2-sha256$i=N$salt$hash"
        if fields.count == 5, fields[1] == "pbkdf2-sha256", fields[2].hasPrefix("i="),
            let iterations = Int(fields[2].dropFirst(2)), iterations > 0,
            let salt = Data(base64Encoded: String(fields[3])), let hash = Data(base64Encoded: String(fields[4]))
        {
            self = .pbkdf2SHA256(iterations: iterations, salt: Array(salt), hash: Array(hash))
            return
        }
        return nil
    }
}
