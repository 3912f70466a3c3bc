import ChatProtocol
import Logging
import ServiceLifecycle
import Synchronization

/// Counts each user's WebSocket connections on every node of the database, so that the
/// per-user cap (`CHAT_WS_CONNECTIONS_PER_USER`) holds for the cluster, not per node: a
/// handshake claims a row before it is accepted (``claim(for:)``), and the connection gives it
/// back when it ends (``ConnectionClaim``). Rows are given back in batches, one statement per
/// batch, off the closing connections' path.
final class ClusterConnections: Service {
    private let store: PostgresChatStore
    private let node: String
    private let cap: Int
    private let clock: any Clock<Duration>
    private let released = Mutex<[Int64]>([])
    private let releasesWaiting: AsyncStream<Void>.Continuation
    private let wakeUps: AsyncStream<Void>
    private let logger: Logger

    /// - Parameters:
    ///   - node: this node's name (``ClusterLink/Settings/nodeName``).
    ///   - cap: connections a user may have open on all nodes together.
    ///   - clock: what the pause before retrying a failed release waits on.
    init(store: PostgresChatStore, node: String, cap: Int, clock: any Clock<Duration>, logger: Logger) {
        self.store = store
        self.node = node
        self.cap = cap
        self.clock = clock
        self.logger = logger
        (wakeUps, releasesWaiting) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Counts a new connection of `user`; nil when the user has `cap` open already.
    /// - Throws: ``ChatError/storageUnavailable`` when the database cannot say.
    func claim(for user: UserID) async throws -> ConnectionClaim? {
        guard let id = try await store.claimConnection(of: user, on: node, cap: cap) else { return nil }
        return ConnectionClaim { self.release(id) }
    }

    /// Deletes the rows this node left when it last stopped without saying so (it crashed).
    /// Runs before the node accepts connections.
    func forgetEarlierLife() async throws {
        try await store.forgetConnections(on: node)
    }

    /// Gives the released rows back until graceful shutdown, when the cluster link deletes
    /// all of this node's rows at once. A batch that fails is retried a second later.
    func run() async throws {
        for await _ in wakeUps.cancelOnGracefulShutdown() {
            let batch = released.withLock { released in
                defer { released = [] }
                return released
            }
            guard !batch.isEmpty else { continue }
            do {
                try await store.releaseConnections(batch)
            } catch {
                logger.warning(
                    "Could not give back \(batch.count) closed connections; retrying", metadata: ["error": "\(error)"])
                released.withLock { $0 += batch }
                try? await clock.sleep(for: .seconds(1))
                releasesWaiting.yield()
            }
        }
    }

    private func release(_ id: Int64) {
        released.withLock { $0.append(id) }
        releasesWaiting.yield()
    }
}

/// One connection counted by ``ClusterConnections``, given back once: when the connection
/// ends, or when the last reference goes (a handshake whose connection never opened).
final class ConnectionClaim: Sendable {
    private let giveBack: @Sendable () -> Void
    private let isReleased = Atomic(false)

    init(giveBack: @escaping @Sendable () -> Void) {
        self.giveBack = giveBack
    }

    deinit {
        release()
    }

    func release() {
        guard !isReleased.exchange(true, ordering: .relaxed) else { return }
        giveBack()
    }
}
