import Prometheus

/// The server's metrics and the Prometheus registry that `/metrics` exposes. One per server,
/// so that servers in one process (as in tests) do not mix their numbers.
public struct Telemetry: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let metrics: ChatMetrics

    public init() {
        registry = PrometheusCollectorRegistry()
        metrics = ChatMetrics(factory: PrometheusMetricsFactory(registry: registry))
    }
}
