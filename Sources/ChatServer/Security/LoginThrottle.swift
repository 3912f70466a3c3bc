import Crypto
import Foundation

/// Limits failed log-ins per account and per client address over a sliding window, so that
/// passwords cannot be guessed at speed. A request over either limit is refused before its
/// password is checked, with the time until the oldest counted failure leaves the window.
///
/// The failures are counted in a ``LoginFailureLog``: with PostgreSQL in the database, so the
/// limits hold for all nodes together (docs/security.md).
public struct LoginThrottle: Sendable {
    /// Failures allowed within `window`; the next one is refused.
    public struct Limits: Sendable, Equatable {
        public var perAccount: Int
        public var perAddress: Int
        public var window: Duration

        public init(perAccount: Int = 10, perAddress: Int = 30, window: Duration = .seconds(60)) {
            self.perAccount = perAccount
            self.perAddress = perAddress
            self.window = window
        }
    }

    public let limits: Limits
    private let failures: any LoginFailureLog

    public init(limits: Limits, failures: any LoginFailureLog) {
        self.limits = limits
        self.failures = failures
    }

    /// Nil when a log-in to `account` from `address` may be tried; otherwise how long to wait.
    public func retryAfter(account: String, address: String?) async throws -> Duration? {
        let keys = keys(account: account, address: address)
        let recent = try await failures.recentFailures(of: keys.map(\.key), within: limits.window)
        return keys.compactMap { key, limit in
            recent[key].flatMap { $0.count >= limit ? $0.oldestLeavesIn : nil }
        }.max()
    }

    /// Counts a failed log-in against the account and the address.
    public func recordFailure(account: String, address: String?) async throws {
        try await failures.recordFailure(of: keys(account: account, address: address).map(\.key), window: limits.window)
    }

    /// A successful log-in clears its account's failures (not its address's: an attacker
    /// could otherwise reset the address count by logging in to an account of their own).
    public func recordSuccess(account: String) async throws {
        try await failures.forgetFailures(of: Self.accountKey(account))
    }

    private static func accountKey(_ account: String) -> String { key("account", account) }

    private func keys(account: String, address: String?) -> [(key: String, limit: Int)] {
        [(Self.accountKey(account), limits.perAccount)]
            + (address.map { [(Self.key("address", $0), limits.perAddress)] } ?? [])
    }

    /// The key failures are counted under: the kind, and a SHA-256 digest of the value as it
    /// was typed. A digest has a fixed size and any bytes (a NUL, a megabyte of name) are
    /// fine, and the log holds no names or addresses.
    private static func key(_ kind: String, _ value: String) -> String {
        kind + ":" + SHA256.hash(data: Data(value.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
