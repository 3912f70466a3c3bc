import ChatProtocol
import PostgresNIO

/// What ``ClusterLink`` asks of PostgreSQL: a notification channel shared by every node, and
/// the nodes' heartbeats (migration 0003).
extension PostgresChatStore {
    /// The channel the messages trigger and the nodes notify on.
    static let clusterChannel = "chat_cluster"

    /// A node's heartbeat as another node reads it.
    struct NodeHeartbeat: Sendable {
        let node: String
        let presenceVersion: Int64
        let onlineUsers: [UserID]
        /// ``SharedSettings/text``; empty from a node too old to publish it.
        let sharedSettings: String
    }

    /// LISTENs on the cluster channel on a connection of its own, runs `listening` once it
    /// listens, then `receive` with each payload that arrives, in order, until cancelled.
    /// Throws when the connection cannot be opened or fails.
    func listenToCluster(
        listening: () async throws -> Void, receive: (String) async -> Void
    ) async throws {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                configuration: separateListenConfiguration ?? connectionConfiguration, id: 0, logger: logger)
        } catch {
            throw mapError(error)
        }
        do {
            // Cancellation closes the connection: that ends the notifications and any query
            // on it (UNLISTEN included), which PostgresNIO 1.33.2 could otherwise wait on for
            // good (docs/reliability.md, "Found by the fault runs, and fixed").
            try await withTaskCancellationHandler {
                try await connection.listen(on: Self.clusterChannel) { notifications in
                    try await listening()
                    for try await notification in notifications {
                        await receive(notification.payload)
                    }
                }
            } onCancel: {
                connection.close().whenFailure { _ in }
            }
        } catch {
            try? await connection.close()
            throw mapError(error)
        }
        try? await connection.close()
    }

    /// Sends each payload as a notification to every node, in order, in one round trip.
    func notifyCluster(_ payloads: [String]) async throws {
        try await execute(
            """
            SELECT pg_notify(\(Self.clusterChannel), payload)
            FROM unnest(\(payloads)::text[]) WITH ORDINALITY AS sent(payload, position) ORDER BY position
            """)
    }

    /// Records this node's heartbeat with the users connected to it and its shared settings,
    /// valid for `expiry`, and returns the other nodes' unexpired ones. Nodes expired for an
    /// hour are forgotten.
    func heartbeat(
        node: String, presenceVersion: Int64, onlineUsers: [UserID], sharedSettings: String, expiry: Duration
    ) async throws -> [NodeHeartbeat] {
        try await write(
            """
            WITH mine AS (
                INSERT INTO cluster_nodes (node, expires_at, presence_version, online_users, shared_settings)
                VALUES (
                    \(node), now() + make_interval(secs => \(Double(expiry.milliseconds) / 1000)),
                    \(presenceVersion), \(onlineUsers.map(\.rawValue))::bigint[], \(sharedSettings))
                ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at,
                    presence_version = excluded.presence_version, online_users = excluded.online_users,
                    shared_settings = excluded.shared_settings
            ), forgotten AS (
                DELETE FROM cluster_nodes WHERE expires_at < now() - interval '1 hour'
            )
            SELECT node, presence_version, online_users, shared_settings FROM cluster_nodes
            WHERE node <> \(node) AND expires_at > now()
            """, as: (String, Int64, [Int64], String).self
        ).map {
            NodeHeartbeat(node: $0.0, presenceVersion: $0.1, onlineUsers: $0.2.map(UserID.init), sharedSettings: $0.3)
        }
    }

    /// Deletes this node's heartbeat and its connections' rows: it is stopping, and its users'
    /// presence and connections end with it.
    func forgetNode(_ node: String) async throws {
        try await execute(
            """
            WITH closed AS (DELETE FROM websocket_connections WHERE node = \(node))
            DELETE FROM cluster_nodes WHERE node = \(node)
            """)
    }

    /// The last `seq` and `update_seq` of each of `chats` that still exists.
    func lastPositions(of chats: [ChatID]) async throws -> [(chat: ChatID, lastSeq: Int64, lastUpdate: Int64)] {
        try await fetch(
            "SELECT id, last_seq, last_update FROM chats WHERE id = ANY(\(chats.map(\.rawValue))::bigint[])",
            as: (Int64, Int64, Int64).self
        ).map { (ChatID($0.0), $0.1, $0.2) }
    }

    /// The chats `user` is a member of.
    func chatIDs(of user: UserID) async throws -> [ChatID] {
        try await fetch("SELECT chat_id FROM group_members WHERE user_id = \(user.rawValue)", as: Int64.self)
            .map(ChatID.init)
    }
}
