import ChatProtocol
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// Health checks and metrics for operators: `GET /health/live`, `GET /health/ready` and
/// `GET /metrics` (Prometheus text format, behind `CHAT_METRICS_TOKEN` when it is set).
struct OperationsController {
    let store: any ChatStore
    let cluster: ClusterLink?
    let registry: PrometheusCollectorRegistry
    let metrics: ChatMetrics
    let metricsToken: String?

    func addPublicRoutes(to router: Router<ChatRequestContext>) {
        router.get("/health/live", use: live)
        router.get("/health/ready", use: ready)
        router.get("/metrics", use: metrics)
    }

    /// The process is up and serving.
    @Sendable func live(request: Request, context: ChatRequestContext) async throws -> Response {
        try JSONResponse.make(["status": "ok"])
    }

    /// The database answers, every migration this build knows is applied, and with several
    /// nodes this one hears the others and shares their settings (or most of them share its
    /// settings); 503 with the reason otherwise.
    @Sendable func ready(request: Request, context: ChatRequestContext) async throws -> Response {
        let pending: [MigrationStatus]
        do {
            pending = try await store.migrationStatus().filter { $0.appliedAt == nil }
        } catch {
            context.logger.warning("Readiness check failed", metadata: ["error": "\(error)"])
            throw APIError(
                status: .serviceUnavailable, code: .databaseUnreachable, message: "The database cannot be reached.",
                headers: [.retryAfter: "1"])
        }
        guard pending.isEmpty else {
            throw APIError(
                status: .serviceUnavailable, code: .migrationsPending,
                message:
                    "Migrations \(pending.map { String($0.migration.version) }.joined(separator: ", ")) are not applied."
            )
        }
        if let cluster, !cluster.isListening {
            throw APIError(
                status: .serviceUnavailable, code: .clusterUnreachable,
                message: "This node does not hear the other nodes through the database yet.",
                headers: [.retryAfter: "1"])
        }
        if let mismatch = cluster?.settingsMismatch, !mismatch.inMajority {
            throw APIError(
                status: .serviceUnavailable,
                code: mismatch.keyDiffers ? .clusterSecretMismatch : .clusterSettingsMismatch,
                message: "Settings that every node must share differ from other nodes': \(mismatch.description).")
        }
        return try JSONResponse.make(["status": "ready"])
    }

    /// Every metric in the Prometheus text format, with its help text.
    @Sendable func metrics(request: Request, context: ChatRequestContext) async throws -> Response {
        if let metricsToken {
            guard let authorization = request.headers[.authorization], authorization == "Bearer \(metricsToken)" else {
                throw APIError(
                    status: .unauthorized, code: .notAuthenticated,
                    message: "Send the metrics token as a bearer token.",
                    headers: [.wwwAuthenticate: "Bearer"])
            }
        }
        if let sample = ProcessSample.read() { metrics.processSampled(sample) }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(
                byteBuffer: ByteBuffer(
                    string: ChatMetrics.withHelp(String(decoding: registry.emitToBuffer(), as: UTF8.self)))))
    }
}
