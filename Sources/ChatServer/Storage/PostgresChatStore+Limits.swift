import ChatProtocol
import PostgresNIO

/// The limits that hold for all nodes on one database (migration 0009): failed log-ins, and
/// each user's open WebSocket connections.
extension PostgresChatStore: LoginFailureLog {
    /// Expired failures a recorded one sweeps, at most: enough to keep the table to the rows
    /// still in the window, few enough that no failure pays for a large delete.
    static let failureSweepLimit = 100

    public func recentFailures(of keys: [String], within window: Duration) async throws -> [String: RecentFailures] {
        let rows = try await fetch(
            """
            SELECT key, count(*), EXTRACT(EPOCH FROM min(failed_at) + make_interval(secs => \(window.seconds)) - now())::float8
            FROM login_failures
            WHERE key = ANY(\(keys)::text[]) AND failed_at > now() - make_interval(secs => \(window.seconds))
            GROUP BY key
            """, as: (String, Int64, Double).self)
        return Dictionary(
            uniqueKeysWithValues: rows.map { key, count, leavesIn in
                (
                    key,
                    RecentFailures(
                        count: Int(count), oldestLeavesIn: .milliseconds(Int64((leavesIn * 1000).rounded(.up))))
                )
            })
    }

    public func recordFailure(of keys: [String], window: Duration) async throws {
        try await execute(
            """
            WITH swept AS (
                DELETE FROM login_failures WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM login_failures
                    WHERE failed_at <= now() - make_interval(secs => \(window.seconds))
                    LIMIT \(Self.failureSweepLimit)))
            )
            INSERT INTO login_failures (key) SELECT unnest(\(keys)::text[])
            """)
    }

    public func forgetFailures(of key: String) async throws {
        try await execute("DELETE FROM login_failures WHERE key = \(key)")
    }

    /// Records a connection of `user` on `node` unless the user already has `cap` connections
    /// open on live nodes; nil when refused. Exact under concurrent claims on any nodes
    /// (migration 0009's `claim_websocket_connection`).
    func claimConnection(of user: UserID, on node: String, cap: Int) async throws -> Int64? {
        try await write(
            "SELECT claim_websocket_connection(\(node), \(user.rawValue), \(Int32(clamping: cap)))", as: Int64?.self
        ).first ?? nil
    }

    /// Deletes the rows of connections that closed.
    func releaseConnections(_ ids: [Int64]) async throws {
        try await execute("DELETE FROM websocket_connections WHERE id = ANY(\(ids)::bigint[])")
    }

    /// Deletes every connection row of `node`: it starts afresh, or stops.
    func forgetConnections(on node: String) async throws {
        try await execute("DELETE FROM websocket_connections WHERE node = \(node)")
    }
}

extension Duration {
    /// The duration in (fractional) seconds, as PostgreSQL's `make_interval(secs =>)` takes it.
    fileprivate var seconds: Double { Double(milliseconds) / 1000 }
}
