/// Where ``LoginThrottle`` counts failed log-ins, by key (`account:` or `address:` and a
/// digest of the account or the address): in this process when one node serves (``LocalLoginFailures``, with SQLite),
/// in PostgreSQL when several may (``PostgresChatStore``), so that a client behind a balancer
/// that spreads its requests gets no more guesses than it would from one node.
public protocol LoginFailureLog: Sendable {
    /// For each of `keys` with failures younger than `window`: how many, and when the oldest
    /// of them leaves the window.
    func recentFailures(of keys: [String], within window: Duration) async throws -> [String: RecentFailures]
    /// Counts a failure, now, against each of `keys`. Failures older than `window` may be
    /// forgotten.
    func recordFailure(of keys: [String], window: Duration) async throws
    /// Forgets every failure counted against `key`.
    func forgetFailures(of key: String) async throws
}

/// One key's failures within the window.
public struct RecentFailures: Sendable, Equatable {
    public var count: Int
    /// How long until the oldest of them leaves the window.
    public var oldestLeavesIn: Duration

    public init(count: Int, oldestLeavesIn: Duration) {
        self.count = count
        self.oldestLeavesIn = oldestLeavesIn
    }
}
