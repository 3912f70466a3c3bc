import Synchronization

/// Failed log-ins counted in this process: the ``LoginFailureLog`` of a server on SQLite,
/// which is the only node. The counts start empty when the process starts.
public final class LocalLoginFailures: LoginFailureLog {
    private struct State {
        /// Failure times per key, oldest first.
        var failures: [String: [ContinuousClock.Instant]] = [:]
        var recordsSinceSweep = 0
    }

    /// Records past which a sweep drops the keys whose failures all left the window.
    private static let sweepEvery = 10_000

    private let now: @Sendable () -> ContinuousClock.Instant
    private let state = Mutex(State())

    /// - Parameter now: the clock, replaceable in tests.
    public init(now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.now = now
    }

    public func recentFailures(of keys: [String], within window: Duration) -> [String: RecentFailures] {
        let now = now()
        return state.withLock { state in
            var recent: [String: RecentFailures] = [:]
            for key in keys {
                guard var times = state.failures[key] else { continue }
                times.removeAll { $0 <= now - window }
                state.failures[key] = times.isEmpty ? nil : times
                if let oldest = times.first {
                    recent[key] = RecentFailures(count: times.count, oldestLeavesIn: oldest + window - now)
                }
            }
            return recent
        }
    }

    public func recordFailure(of keys: [String], window: Duration) {
        let now = now()
        state.withLock { state in
            for key in keys { state.failures[key, default: []].append(now) }
            state.recordsSinceSweep += 1
            if state.recordsSinceSweep >= Self.sweepEvery {
                state.recordsSinceSweep = 0
                let cutoff = now - window
                state.failures = state.failures.filter { ($0.value.last ?? cutoff) > cutoff }
            }
        }
    }

    public func forgetFailures(of key: String) {
        _ = state.withLock { $0.failures.removeValue(forKey: key) }
    }
}
