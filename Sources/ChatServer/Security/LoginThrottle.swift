import Foundation
import Synchronization

/// Limits failed log-ins per account and per client address over a sliding window, so that
/// passwords cannot be guessed at speed. A request over either limit is refused before its
/// password is checked, with the time until the oldest counted failure leaves the window.
///
/// Counts live in this process: with several nodes each keeps its own (docs/security.md).
public final class LoginThrottle: Sendable {
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

    private struct State {
        /// Failure times per key (`account:<login key>`, `address:<ip>`), oldest first.
        var failures: [String: [ContinuousClock.Instant]] = [:]
        var recordsSinceSweep = 0
    }

    /// Keys past which a sweep drops those whose failures all left the window.
    private static let sweepEvery = 10_000

    public let limits: Limits
    private let now: @Sendable () -> ContinuousClock.Instant
    private let state = Mutex(State())

    /// - Parameter now: the clock, replaceable in tests.
    public init(limits: Limits, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.limits = limits
        self.now = now
    }

    /// Nil when a log-in to `account` from `address` may be tried; otherwise how long to wait.
    public func retryAfter(account: String, address: String?) -> Duration? {
        let now = now()
        return state.withLock { state in
            let waits = Self.keys(account: account, address: address).compactMap { key, limit in
                Self.wait(for: key, limit: limit(limits), now: now, window: limits.window, in: &state)
            }
            return waits.max()
        }
    }

    /// Counts a failed log-in against the account and the address.
    public func recordFailure(account: String, address: String?) {
        let now = now()
        state.withLock { state in
            for (key, _) in Self.keys(account: account, address: address) {
                state.failures[key, default: []].append(now)
            }
            state.recordsSinceSweep += 1
            if state.recordsSinceSweep >= Self.sweepEvery {
                state.recordsSinceSweep = 0
                let cutoff = now - limits.window
                state.failures = state.failures.filter { ($0.value.last ?? cutoff) > cutoff }
            }
        }
    }

    /// A successful log-in clears its account's failures (not its address's: an attacker
    /// could otherwise reset the address count by logging in to an account of their own).
    public func recordSuccess(account: String) {
        _ = state.withLock { $0.failures.removeValue(forKey: "account:\(account)") }
    }

    private static func keys(account: String, address: String?) -> [(String, (Limits) -> Int)] {
        [("account:\(account)", \.perAccount)] + (address.map { [("address:\($0)", \.perAddress)] } ?? [])
    }

    /// Drops `key`'s failures that left the window; when `limit` remain, the time until the
    /// oldest leaves it.
    private static func wait(
        for key: String, limit: Int, now: ContinuousClock.Instant, window: Duration, in state: inout State
    ) -> Duration? {
        guard var times = state.failures[key] else { return nil }
        times.removeAll { $0 <= now - window }
        state.failures[key] = times.isEmpty ? nil : times
        guard times.count >= limit, let oldest = times.first else { return nil }
        return oldest + window - now
    }
}
