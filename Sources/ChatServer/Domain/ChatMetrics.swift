import CoreMetrics

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
    private let factory: any MetricsFactory

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
        sendToAck.recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// The database failed: it was unreachable, or returned an error the store did not expect.
    func databaseError() {
        databaseErrors.increment()
    }

    /// Counts one HTTP request by route template (e.g. `/history/{chat_id}`) and status.
    func requestHandled(route: String, status: Int) {
        Counter(
            label: "chat_http_requests_total", dimensions: [("route", route), ("status", String(status))],
            factory: factory
        ).increment()
    }
}
