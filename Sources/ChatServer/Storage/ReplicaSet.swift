import CoreMetrics
import PostgresNIO
import Synchronization

/// The streaming replicas a node reads from (`DATABASE_REPLICA_URLS`): a pool for each, and which
/// of them are in rotation. ``PostgresChatStore`` checks them (``PostgresChatStore/checkReplicas()``)
/// and routes reads to them; this type keeps the state and the metrics.
final class ReplicaSet: Sendable {
    /// One replica: its pool, and whether it is in rotation.
    final class Replica: Sendable {
        /// `host:port`, as the logs and metrics name it.
        let name: String
        let client: PostgresClient
        private let inRotationNow = Atomic(false)
        /// The WAL position its last check (or read) found replayed.
        private let replayedAtLeast = Atomic<Int64>(0)
        private let inRotationGauge: Gauge
        private let lagGauge: Gauge
        private let reads: Counter

        init(name: String, client: PostgresClient, factory: any MetricsFactory) {
            self.name = name
            self.client = client
            inRotationGauge = Gauge(
                label: "chat_database_replica_in_rotation", dimensions: [("replica", name)], factory: factory)
            lagGauge = Gauge(
                label: "chat_database_replica_lag_seconds", dimensions: [("replica", name)], factory: factory)
            reads = Counter(label: "chat_database_reads_total", dimensions: [("target", name)], factory: factory)
            inRotationGauge.record(0)
        }

        var inRotation: Bool { inRotationNow.load(ordering: .relaxed) }

        /// Notes that a check or a read found the WAL replayed up to `position`. The last
        /// one's, not the furthest ever: a replica rebuilt from an older backup starts behind.
        func replayed(_ position: Int64) {
            replayedAtLeast.store(position, ordering: .relaxed)
        }

        /// Whether it is known to have replayed the WAL up to `position`, so that a snapshot
        /// taken on it from now on has every transaction committed before it.
        func hasReplayed(_ position: Int64) -> Bool {
            replayedAtLeast.load(ordering: .relaxed) >= position
        }

        func servedARead() {
            reads.increment()
        }

        /// Records a check's outcome: in rotation when `outOfRotationBecause` is nil. Returns the
        /// change, if any, for the log.
        func checked(lag: Duration?, outOfRotationBecause reason: String?) -> String? {
            if let lag { lagGauge.record(Double(lag.milliseconds) / 1000) }
            inRotationGauge.record(reason == nil ? 1 : 0)
            let wasInRotation = inRotationNow.exchange(reason == nil, ordering: .relaxed)
            switch (wasInRotation, reason) {
            case (false, nil): return "back in rotation"
            case (true, let reason?): return "out of rotation: \(reason)"
            default: return nil
            }
        }
    }

    /// The replicas' settings.
    struct Settings: Sendable {
        /// A replica further behind the primary than this is out of rotation (`CHAT_REPLICA_MAX_LAG_MS`).
        var maxLag: Duration
        /// How often each replica is checked.
        var checkInterval: Duration = .milliseconds(250)
        /// How long a read waits on a replica before it goes to the primary instead.
        var waitLimits = PostgresChatStore.WaitLimits(connection: .seconds(1), work: .seconds(5))
        /// How long a check waits before it takes the replica out of rotation.
        var checkLimits = PostgresChatStore.WaitLimits(connection: .seconds(1), work: .seconds(1))
    }

    let replicas: [Replica]
    let settings: Settings
    /// Reads a replica could have served that the primary served.
    private let primaryReads: Counter
    /// Reads on a replica that needed the chats' positions from the primary.
    private let positionChecks: Counter
    private let nextReplica = Atomic(0)
    private let primaryPositions = Mutex(ReplayLag())

    init(replicas: [Replica], settings: Settings, factory: any MetricsFactory) {
        self.replicas = replicas
        self.settings = settings
        primaryReads = Counter(
            label: "chat_database_reads_total", dimensions: [("target", "primary")], factory: factory)
        positionChecks = Counter(label: "chat_database_replica_position_checks_total", factory: factory)
    }

    func primaryServedARead() {
        primaryReads.increment()
    }

    func checkedPositionsOnThePrimary() {
        positionChecks.increment()
    }

    /// The next replica in rotation, round robin; nil when none is.
    func pick() -> Replica? {
        let start = nextReplica.add(1, ordering: .relaxed).newValue
        for offset in 0..<replicas.count {
            let replica = replicas[(start + offset) % replicas.count]
            if replica.inRotation { return replica }
        }
        return nil
    }

    /// Notes where the primary's WAL was at `instant`.
    func primaryWasAt(_ position: Int64, at instant: ContinuousClock.Instant) {
        primaryPositions.withLock { $0.primaryWasAt(position, at: instant, keeping: settings.maxLag * 2) }
    }

    /// How far behind the primary a replica that has replayed `position` is, at `now`.
    func lag(ofReplayed position: Int64, now: ContinuousClock.Instant) -> Duration {
        primaryPositions.withLock { $0.lag(ofReplayed: position, now: now) }
    }
}

/// A replica's lag in time, from the primary's WAL positions sampled as time passes: how long
/// ago the primary first wrote something the replica has not replayed yet. Zero while it has
/// replayed everything sampled; PostgreSQL's own `replay_lag` needs a privileged view of the
/// primary, this needs none.
struct ReplayLag {
    /// The primary's positions, oldest first, each with when it was first seen.
    private var samples: [(position: Int64, at: ContinuousClock.Instant)] = []

    /// Notes the primary at `position` at `instant`, and forgets samples older than `window`
    /// (keeping the newest): a replica further behind than that counts as `window` behind, at least.
    mutating func primaryWasAt(_ position: Int64, at instant: ContinuousClock.Instant, keeping window: Duration) {
        if samples.last.map({ $0.position < position }) ?? true { samples.append((position, instant)) }
        let horizon = instant - window
        let expired = samples.prefix { $0.at < horizon }.count
        samples.removeFirst(min(expired, samples.count - 1))
    }

    /// Time since the oldest sampled position past `replayed`; zero when there is none.
    func lag(ofReplayed replayed: Int64, now: ContinuousClock.Instant) -> Duration {
        guard let firstMissed = samples.first(where: { $0.position > replayed }) else { return .zero }
        return now - firstMissed.at
    }
}
