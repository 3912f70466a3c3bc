import CoreMetrics
import Synchronization

/// The server's metrics, all named `chat_<noun>_<unit|total>`, made on one metrics factory
/// (the server's Prometheus registry; a no-op factory where nobody reads them). Callers say
/// what happened; this type knows how it is counted.
public struct ChatMetrics: Sendable {
    private let webSocketConnections: Meter
    private let connectedUsers: Meter
    private let messagesStored: Counter
    private let messagesDelivered: Counter
    private let duplicatesSuppressed: Counter
    private let slowConsumersClosed: Counter
    private let sendToAck: Timer
    private let databaseErrors: Counter
    private let sendsRefusedOverloaded: Counter
    private let sendsRateLimited: Counter
    fileprivate let databaseConnectionsInUse: Meter
    fileprivate let databaseConnectionsWaiting: Meter
    private let connectionsRefused: [ConnectionRefusal: Counter]
    /// For metrics their owners make (the cluster link's, the read replicas').
    let factory: any MetricsFactory

    public init(factory: any MetricsFactory) {
        self.factory = factory
        webSocketConnections = Meter(label: "chat_websocket_connections", factory: factory)
        connectedUsers = Meter(label: "chat_connected_users", factory: factory)
        messagesStored = Counter(label: "chat_messages_stored_total", factory: factory)
        messagesDelivered = Counter(label: "chat_messages_delivered_total", factory: factory)
        duplicatesSuppressed = Counter(label: "chat_duplicates_suppressed_total", factory: factory)
        slowConsumersClosed = Counter(label: "chat_slow_consumers_closed_total", factory: factory)
        sendToAck = Timer(label: "chat_send_ack_seconds", factory: factory)
        databaseErrors = Counter(label: "chat_database_errors_total", factory: factory)
        // Made once: under overload a refusal is the hot path.
        sendsRefusedOverloaded = Counter(
            label: "chat_sends_refused_total", dimensions: [("reason", "overloaded")], factory: factory)
        sendsRateLimited = Counter(
            label: "chat_sends_refused_total", dimensions: [("reason", "rate_limited")], factory: factory)
        databaseConnectionsInUse = Meter(label: "chat_database_connections_in_use", factory: factory)
        databaseConnectionsWaiting = Meter(label: "chat_database_connections_waiting", factory: factory)
        var refused: [ConnectionRefusal: Counter] = [:]
        for reason in ConnectionRefusal.allCases {
            refused[reason] = Counter(
                label: "chat_connections_refused_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        connectionsRefused = refused
    }

    /// Why the server turned a connection away or ended it before it was served.
    enum ConnectionRefusal: String, CaseIterable {
        /// Over `CHAT_MAX_CONNECTIONS`: 503 before anything was read.
        case serverLimit = "server_limit"
        /// Over `CHAT_WS_CONNECTIONS_PER_USER`: a 429 handshake, or a close with 1013.
        case userLimit = "user_limit"
        /// The database could not list the user's chats for `ready`: a close with 1013.
        case databaseUnavailable = "database_unavailable"
        /// No complete request head within `CHAT_REQUEST_HEAD_TIMEOUT_SECONDS`: 408, or a close.
        case requestHeadTimeout = "request_head_timeout"
    }

    /// Each metric's `# HELP` text (docs/operations.md has the same list). swift-metrics, the API
    /// these metrics are made through, carries none, so `/metrics` adds them (``withHelp(_:)``).
    static let helpTexts: [String: String] = [
        "chat_websocket_connections": "Open WebSocket connections on this server.",
        "chat_connected_users": "Users with at least one open connection on this server.",
        "chat_messages_stored_total": "Messages stored.",
        "chat_messages_delivered_total": "Message and ack frames handed to connections.",
        "chat_duplicates_suppressed_total": "Sends that repeated a client_id (retries, raced devices).",
        "chat_slow_consumers_closed_total": "Connections closed with 4001 for falling behind.",
        "chat_send_ack_seconds": "Time from a send frame arriving to its ack being queued.",
        "chat_database_errors_total": "Database failures: unreachable, or unexpected errors.",
        "chat_sends_refused_total": "Sends refused before anything was stored, by reason (overloaded, rate_limited).",
        "chat_http_requests_total": "HTTP requests by route template and status.",
        "chat_database_connections_in_use": "Database connections this server holds for a query or transaction.",
        "chat_database_connections_waiting": "Queries and transactions waiting for a database connection.",
        "chat_connections_refused_total":
            "Connections turned away by reason (server_limit, user_limit, database_unavailable, "
            + "request_head_timeout).",
        "chat_cluster_listening": "1 while this node's LISTEN connection hears the other nodes (PostgreSQL only).",
        "chat_cluster_notify_lag_seconds":
            "Time from sending an announcement to the other nodes to hearing it back on LISTEN (PostgreSQL only).",
        "chat_database_reads_total":
            "Reads a replica could serve, by where they were served (primary, or a replica's host:port).",
        "chat_database_replica_in_rotation": "1 while a read replica serves reads, by replica.",
        "chat_database_replica_position_checks_total":
            "Reads sent to a replica that first read the chats' positions on the primary (read-your-writes).",
        "chat_database_replica_lag_seconds": "How far a read replica's replay is behind the primary, by replica.",
        "process_resident_memory_bytes": "Resident memory of the server process.",
        "process_open_fds": "Open file descriptors of the server process (sockets included).",
        "process_max_fds": "The limit on open file descriptors of the server process.",
    ]

    /// The Prometheus text `exposition` with a `# HELP` line before the `# TYPE` line of each
    /// metric that has a help text.
    public static func withHelp(_ exposition: String) -> String {
        var lines: [Substring] = []
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.split(separator: " ").dropFirst(2).first,
                let help = helpTexts[String(name)]
            {
                lines.append("# HELP \(name) \(help)")
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// Metrics that go nowhere, for the admin commands and tests that do not read them.
    public static let disabled = ChatMetrics(factory: NOOPMetricsHandler.instance)

    /// A WebSocket connection opened; `cameOnline` when it is its user's first.
    func connectionOpened(cameOnline: Bool) {
        webSocketConnections.increment()
        if cameOnline { connectedUsers.increment() }
    }

    /// A WebSocket connection closed; `wentOffline` when it was its user's last.
    func connectionClosed(wentOffline: Bool) {
        webSocketConnections.decrement()
        if wentOffline { connectedUsers.decrement() }
    }

    /// A send was stored, `duplicate` when it repeated an earlier one.
    func messageStored(duplicate: Bool) {
        (duplicate ? duplicatesSuppressed : messagesStored).increment()
    }

    /// Message frames (and acks) handed to `count` connections.
    func messagesDelivered(_ count: Int) {
        guard count > 0 else { return }
        messagesDelivered.increment(by: count)
    }

    /// A send was refused as `overloaded` before anything was stored.
    func sendRefusedAsOverloaded() {
        sendsRefusedOverloaded.increment()
    }

    /// A send was refused as `rate_limited` before anything was stored.
    func sendRateLimited() {
        sendsRateLimited.increment()
    }

    /// A connection was closed for falling behind.
    func slowConsumerClosed() {
        slowConsumersClosed.increment()
    }

    /// A send was acknowledged `duration` after its frame arrived.
    func sendAcknowledged(after duration: Duration) {
        sendToAck.record(duration)
    }

    /// The database failed: it was unreachable, or returned an error the store did not expect.
    func databaseError() {
        databaseErrors.increment()
    }

    /// A connection was turned away, or ended before it was served, for `reason`.
    func connectionRefused(_ reason: ConnectionRefusal) {
        connectionsRefused[reason]?.increment()
    }

    /// Starts counting a request for a database connection: waiting until the pool grants
    /// it, then in use until ``DatabaseLease/end()``.
    func databaseConnectionRequested() -> DatabaseLease {
        databaseConnectionsWaiting.increment()
        return DatabaseLease(metrics: self)
    }

    /// The cluster link's metrics, made by the link itself: a server without one (SQLite)
    /// exports none of them.
    func cluster() -> ClusterMetrics {
        ClusterMetrics(
            listeningGauge: Gauge(label: "chat_cluster_listening", factory: factory),
            notifyLag: Timer(label: "chat_cluster_notify_lag_seconds", factory: factory))
    }

    /// Records the process's memory and descriptors, read when `/metrics` is scraped.
    func processSampled(_ sample: ProcessSample) {
        Gauge(label: "process_resident_memory_bytes", factory: factory).record(sample.residentBytes)
        Gauge(label: "process_open_fds", factory: factory).record(sample.openDescriptors)
        Gauge(label: "process_max_fds", factory: factory).record(sample.maxDescriptors)
    }

    /// Counts one HTTP request by route template (e.g. `/history/{chat_id}`) and status.
    func requestHandled(route: String, status: Int) {
        Counter(
            label: "chat_http_requests_total", dimensions: [("route", route), ("status", String(status))],
            factory: factory
        ).increment()
    }
}

/// One request for a database connection (``ChatMetrics/databaseConnectionRequested()``):
/// counted as waiting until ``granted()``, then as in use until ``end()``.
final class DatabaseLease: Sendable {
    private let metrics: ChatMetrics
    private let state = Atomic<UInt8>(DatabaseLease.waiting)
    private static let waiting: UInt8 = 0
    private static let inUse: UInt8 = 1
    private static let ended: UInt8 = 2

    fileprivate init(metrics: ChatMetrics) {
        self.metrics = metrics
    }

    /// The pool granted the connection.
    func granted() {
        guard state.compareExchange(expected: Self.waiting, desired: Self.inUse, ordering: .relaxed).exchanged
        else { return }
        metrics.databaseConnectionsWaiting.decrement()
        metrics.databaseConnectionsInUse.increment()
    }

    /// The connection went back to the pool, or was never granted.
    func end() {
        switch state.exchange(Self.ended, ordering: .relaxed) {
        case Self.waiting: metrics.databaseConnectionsWaiting.decrement()
        case Self.inUse: metrics.databaseConnectionsInUse.decrement()
        default: break
        }
    }
}

/// What ``ClusterLink`` measures: whether its LISTEN connection is up, and how long a
/// notification takes to come back.
struct ClusterMetrics: Sendable {
    fileprivate let listeningGauge: Gauge
    fileprivate let notifyLag: Timer

    /// Whether the LISTEN connection hears the other nodes.
    func listening(_ isListening: Bool) {
        listeningGauge.record(isListening ? 1 : 0)
    }

    /// This node heard its own announcement back `duration` after sending it.
    func notificationHeard(after duration: Duration) {
        notifyLag.record(duration)
    }
}

extension Timer {
    /// Records a `Duration`, to the nanosecond.
    fileprivate func record(_ duration: Duration) {
        recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }
}
