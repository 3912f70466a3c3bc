import ChatProtocol
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// This node's link to the other nodes sharing its PostgreSQL database (docs/scaling.md).
///
/// Events reported here go to this node's hub and, with NOTIFY, to the other nodes, whose
/// events arrive through LISTEN and go to this node's hub. New messages need no announcement:
/// while another node's heartbeat is alive, the database's trigger sends one notification per
/// committing statement (migration 0003), and the hub reads the `seq`s it has not delivered
/// (``ChatHub/committed(in:upTo:)``). Edits and deletions are announced, and each node reads the
/// updated messages the same way (``ChatHub/messagesUpdated(in:upTo:)``).
///
/// The listening connection reopens whenever it drops, or goes silent: a connection whose
/// packets vanish stays open and hears nothing, so the node notifies itself a probe every
/// heartbeat interval, and one that hears nothing for three intervals is closed. Each time,
/// before anything newer is delivered, the node catches up: it checks every chat it follows
/// against its last `seq` and rebuilds memberships from the database. Every heartbeat checks
/// the followed chats again (a lost notification costs at most one interval) and records who
/// is connected here: a node whose heartbeats stop is gone after ``Settings/expiry``, and its
/// users' presence with it.
public final class ClusterLink: ChatEvents, Service {
    /// The link's tunables.
    public struct Settings: Sendable {
        /// How this node names itself; unique among the nodes (`CHAT_NODE_NAME`).
        public var nodeName: String
        /// How often the node records its heartbeat and checks its chats
        /// (`CHAT_HEARTBEAT_INTERVAL_MS`).
        public var heartbeatInterval: Duration

        public init(nodeName: String, heartbeatInterval: Duration) {
            self.nodeName = nodeName
            self.heartbeatInterval = heartbeatInterval
        }

        /// How long a node may stay silent before it counts as gone: three missed heartbeats.
        public var expiry: Duration { heartbeatInterval * 3 }
    }

    /// Most announcements waiting to be sent; when the database is away longer, the oldest go
    /// (the other nodes catch up from the database when they reconnect).
    static let maxWaitingAnnouncements = 10_000

    private let settings: Settings
    private let hub: ChatHub
    private let store: PostgresChatStore
    /// What the heartbeat and the reconnect pauses wait on. The notification lag is measured
    /// on `ContinuousClock`: it is a metric of real time.
    private let clock: any Clock<Duration>
    private let waiting = Mutex<[String]>([])
    /// When each announcement still to be heard back was sent: hearing it on this node's own
    /// LISTEN connection measures the notification lag (``ClusterMetrics/notificationHeard(after:)``).
    private let announcedAt = Mutex<[String: ContinuousClock.Instant]>([:])
    private let metrics: ClusterMetrics
    private let announcementsWaiting: AsyncStream<Void>.Continuation
    private let wakeUps: AsyncStream<Void>
    private let presenceChanges: AsyncStream<(UserID, online: Bool)>.Continuation
    private let presenceChangesToAnnounce: AsyncStream<(UserID, online: Bool)>
    private let remotePresence = Mutex(RemotePresence())
    /// Numbers this node's presence changes. It starts at the clock's microseconds, so a node
    /// restarted under the same name numbers above its earlier life.
    private let presenceVersion = Atomic<Int64>(Int64(Date().timeIntervalSince1970 * 1_000_000))
    private let listening = Atomic(false)
    /// Counts the notifications heard on the LISTEN connection, this node's probes among them.
    private let notificationsHeard = Atomic(0)
    private let sharedSettings: @Sendable () -> SharedSettings
    private let mismatch = Mutex<SettingsMismatch?>(nil)
    private let databasePrepared: AsyncStream<Void>.Continuation
    private let databasePreparation: AsyncStream<Void>
    private let logger: Logger

    /// - Parameter sharedSettings: this node's settings that must match the other nodes', read
    ///   at every heartbeat (the token key is known once the database is prepared).
    init(
        settings: Settings, hub: ChatHub, store: PostgresChatStore,
        sharedSettings: @escaping @Sendable () -> SharedSettings,
        clock: any Clock<Duration> = ContinuousClock(), metrics: ChatMetrics, logger: Logger
    ) {
        self.settings = settings
        self.sharedSettings = sharedSettings
        self.hub = hub
        self.store = store
        self.clock = clock
        self.metrics = metrics.cluster()
        self.metrics.listening(false)
        self.logger = logger
        (wakeUps, announcementsWaiting) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (presenceChangesToAnnounce, presenceChanges) = AsyncStream.makeStream()
        (databasePreparation, databasePrepared) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Whether the node hears the other nodes and has caught up: until then it is not ready
    /// for traffic (`GET /health/ready`).
    public var isListening: Bool { listening.load(ordering: .relaxed) }

    /// The live nodes whose shared settings differ from this one's, as of the last heartbeat.
    var settingsMismatch: SettingsMismatch? { mismatch.withLock { $0 } }

    /// Starts the link's work, which needs the tables of the current migrations.
    public func databaseIsPrepared() {
        databasePrepared.yield()
    }

    /// Waits for ``databaseIsPrepared()``, then links this node to the others until graceful
    /// shutdown, when it tells them it stops.
    public func run() async throws {
        for await _ in databasePreparation.cancelOnGracefulShutdown() { break }
        guard !Task.isCancelled, !Task.isShuttingDownGracefully else { return }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen() }
            group.addTask { await self.sendAnnouncements() }
            group.addTask { await self.beat() }
            group.addTask { await self.announcePresenceChanges() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        do {
            try await store.forgetNode(settings.nodeName)
            try await store.notifyCluster([ClusterNotice.payload(of: .stopped, from: settings.nodeName)])
        } catch {
            logger.warning("Could not tell the other nodes that this one stops", metadata: ["error": "\(error)"])
        }
    }

    /// Asks every other node to rebuild its memberships from the database.
    public func requestResync() {
        announce(.resync)
    }

    // MARK: ChatEvents

    public func memberAdded(_ details: ChatDetails, user: UserID) {
        hub.memberAdded(details, user: user)
        announce(.memberAdded(chat: details.chat.id, user: user))
    }

    public func memberRemoved(chat: ChatID, user: UserID, newCreator: UserID?) {
        hub.memberRemoved(chat: chat, user: user, newCreator: newCreator)
        announce(.memberRemoved(chat: chat, user: user, newCreator: newCreator))
    }

    public func markedRead(chat: ChatID, user: UserID, seq: Int64) {
        hub.markedRead(chat: chat, user: user, seq: seq)
        announce(.read(chat: chat, user: user, seq: seq))
    }

    public func typing(chat: ChatID, user: UserID) {
        hub.typing(chat: chat, user: user)
        announce(.typing(chat: chat, user: user))
    }

    public func messagesUpdated(in chat: ChatID, upTo updateSeq: Int64) {
        hub.messagesUpdated(in: chat, upTo: updateSeq)
        announce(.messagesUpdated(chat: chat, upTo: updateSeq))
    }

    /// Announces the change with the next presence version: the hub's registry changed
    /// before, so a heartbeat numbered below it lists the users from before the change.
    public func presenceChanged(of user: UserID, online: Bool, chats: Set<ChatID>) {
        let version = presenceVersion.add(1, ordering: .sequentiallyConsistent).newValue
        announce(.presence(user: user, online: online, version: version))
        if !remotePresence.withLock({ $0.isOnline(user) }) {
            hub.presenceChanged(of: user, online: online, chats: chats)
        }
    }

    public func sessionRevoked(tokenID: String) {
        hub.sessionRevoked(tokenID: tokenID)
        announce(.sessionRevoked(tokenID: tokenID))
    }

    public func sessionsEnded(of user: UserID) {
        hub.sessionsEnded(of: user)
        announce(.sessionsEnded(user: user))
    }

    // MARK: Sending

    private func announce(_ event: ClusterEvent) {
        send(ClusterNotice.payload(of: event, from: settings.nodeName))
    }

    /// Queues `payload` for ``sendAnnouncements()``.
    private func send(_ payload: String) {
        let dropped = waiting.withLock { waiting in
            waiting.append(payload)
            let excess = max(0, waiting.count - Self.maxWaitingAnnouncements)
            waiting.removeFirst(excess)
            return excess
        }
        if dropped > 0 { logger.warning("Dropped announcements to the other nodes: the database is away") }
        announcementsWaiting.yield()
    }

    /// Sends what waits, everything at once in one round trip, until shutdown.
    private func sendAnnouncements() async {
        for await _ in wakeUps {
            let batch = waiting.withLock { waiting in
                defer { waiting = [] }
                return waiting
            }
            guard !batch.isEmpty else { continue }
            let sentAt = ContinuousClock.now
            announcedAt.withLock { announcedAt in
                // Bounded: announcements never heard back (the listener was down) are forgotten.
                if announcedAt.count + batch.count > Self.maxWaitingAnnouncements { announcedAt = [:] }
                for payload in batch { announcedAt[payload] = sentAt }
            }
            do {
                try await store.notifyCluster(batch)
            } catch  where !Task.isCancelled {
                logger.warning(
                    "Could not tell the other nodes about \(batch.count) events", metadata: ["error": "\(error)"])
            } catch {}
        }
    }

    // MARK: Receiving

    /// Listens until shutdown, reconnecting with backoff after every failure.
    private func listen() async {
        let firstRetryDelay = Duration.milliseconds(100)
        var retryDelay = firstRetryDelay
        while !Task.isCancelled {
            do {
                // Other nodes notify only while a heartbeat of another is alive (migration
                // 0003): recorded first, then listening, then catching up misses nothing.
                try await recordHeartbeat()
                try await withThrowingTaskGroup { group in
                    group.addTask {
                        try await self.store.listenToCluster(
                            listening: {
                                try await self.catchUp()
                                self.listening.store(true, ordering: .relaxed)
                                self.metrics.listening(true)
                                self.logger.info(
                                    "Listening to the other nodes",
                                    metadata: ["chat.node": "\(self.settings.nodeName)"])
                            },
                            receive: { await self.received($0) })
                    }
                    // Throws when the connection goes silent: leaving the group cancels the
                    // listener, which closes its connection.
                    group.addTask { try await self.watchForSilence() }
                    try await group.next()
                    group.cancelAll()
                }
            } catch  where !Task.isCancelled {
                logger.warning(
                    "Lost the connection that hears the other nodes; reconnecting", metadata: ["error": "\(error)"])
            } catch {}
            let wasListening = listening.exchange(false, ordering: .relaxed)
            metrics.listening(false)
            guard !Task.isCancelled else { return }
            // Back off while connecting fails; start over after a connection that listened.
            if wasListening { retryDelay = firstRetryDelay }
            try? await clock.sleep(for: retryDelay)
            retryDelay = min(retryDelay * 2, .seconds(5))
        }
    }

    /// Sends this node a probe every heartbeat interval while it listens, and throws
    /// ``ListenerWentSilent`` when three intervals in a row heard nothing. Real time, whatever
    /// the link's clock: it watches a network connection.
    private func watchForSilence() async throws {
        let probe = ClusterNotice.probe(from: settings.nodeName)
        var silentIntervals = 0
        while true {
            let heardBefore = notificationsHeard.load(ordering: .relaxed)
            if isListening { send(probe) }
            try await ContinuousClock().sleep(for: settings.heartbeatInterval)
            guard isListening else { continue }
            let heardNothing = notificationsHeard.load(ordering: .relaxed) == heardBefore
            silentIntervals = heardNothing ? silentIntervals + 1 : 0
            if silentIntervals == 3 { throw ListenerWentSilent(silence: settings.heartbeatInterval * 3) }
        }
    }

    /// Brings this node up to date after it could not listen: messages first, then memberships.
    private func catchUp() async throws {
        try await checkFollowedChats()
        _ = try await hub.resync()
    }

    /// Reads the last `seq` and `update_seq` of every chat followed here; the hub fetches what
    /// it lacks.
    private func checkFollowedChats() async throws {
        let chats = hub.followedChats()
        guard !chats.isEmpty else { return }
        for (chat, lastSeq, lastUpdate) in try await store.lastPositions(of: chats) {
            hub.committed(in: chat, upTo: lastSeq)
            hub.messagesUpdated(in: chat, upTo: lastUpdate)
        }
    }

    private func received(_ payload: String) async {
        notificationsHeard.add(1, ordering: .relaxed)
        let parts = ClusterNotice.split(payload)
        guard parts?.node != Substring(settings.nodeName) else {
            // One of this node's own announcements, heard back: how long notifications take.
            if let sentAt = announcedAt.withLock({ $0.removeValue(forKey: payload) }) {
                metrics.notificationHeard(after: .now - sentAt)
            }
            return
        }
        guard let (node, body) = parts, let notice = ClusterNotice(body: body) else {
            logger.warning(
                "Ignored a notification it cannot read", metadata: ["chat.payload": "\(payload.prefix(200))"])
            return
        }
        do {
            switch notice {
            case .committed(let commits):
                for commit in commits { hub.committed(in: commit.chat, upTo: commit.lastSeq) }
            case .committedInAllChats:
                try await checkFollowedChats()
            case .event(let event):
                try await apply(event, from: String(node))
            }
        } catch {
            logger.warning("Could not apply another node's event", metadata: ["error": "\(error)"])
        }
    }

    private func apply(_ event: ClusterEvent, from node: String) async throws {
        switch event {
        case .memberAdded(let chat, let user):
            // Read now, so that the new member starts at the chat's current end.
            guard let details = try await store.chat(chat, member: user) else { return }
            hub.memberAdded(ChatDetails(chat: details, members: try await store.members(of: chat)), user: user)
        case .memberRemoved(let chat, let user, let newCreator):
            hub.memberRemoved(chat: chat, user: user, newCreator: newCreator)
        case .read(let chat, let user, let seq):
            hub.markedRead(chat: chat, user: user, seq: seq)
        case .typing(let chat, let user):
            hub.typing(chat: chat, user: user)
        case .messagesUpdated(let chat, let updateSeq):
            hub.messagesUpdated(in: chat, upTo: updateSeq)
        case .presence(let user, let online, let version):
            if remotePresence.withLock({ $0.apply(user: user, online: online, version: version, from: node) }) {
                presenceChangedElsewhere([user: online])
            }
        case .sessionRevoked(let tokenID):
            hub.sessionRevoked(tokenID: tokenID)
        case .sessionsEnded(let user):
            hub.sessionsEnded(of: user)
        case .resync:
            _ = try await hub.resync()
        case .stopped:
            presenceChangedElsewhere(remotePresence.withLock { $0.remove(node) })
        }
    }

    // MARK: Heartbeats and presence

    /// Records a heartbeat and checks the followed chats every interval, until shutdown.
    private func beat() async {
        while !Task.isCancelled {
            do {
                try await recordHeartbeat()
                try await checkFollowedChats()
            } catch  where !Task.isCancelled {
                logger.warning("Heartbeat failed", metadata: ["error": "\(error)"])
            } catch {}
            try? await clock.sleep(for: settings.heartbeatInterval)
        }
    }

    /// Records this node's heartbeat and applies the other nodes'.
    private func recordHeartbeat() async throws {
        // The version is read before the users are listed: see RemotePresence.
        let version = presenceVersion.load(ordering: .sequentiallyConsistent)
        let readSince = remotePresence.withLock { $0.noticeMark }
        let own = sharedSettings()
        let heartbeats = try await store.heartbeat(
            node: settings.nodeName, presenceVersion: version, onlineUsers: hub.onlineUsers(),
            sharedSettings: own.text, expiry: settings.expiry)
        presenceChangedElsewhere(remotePresence.withLock { $0.apply(heartbeats: heartbeats, readSince: readSince) })
        compareSettings(
            own,
            with: heartbeats.compactMap { heartbeat in
                SharedSettings(text: heartbeat.sharedSettings).map { (heartbeat.node, $0) }
            })
    }

    /// Records which live nodes' settings differ from this node's, logging each change: an
    /// error while they differ, a notice when they match again.
    private func compareSettings(_ own: SharedSettings, with others: [(node: String, settings: SharedSettings)]) {
        let now = SettingsMismatch(own: own, others: others)
        let before = mismatch.withLock { mismatch in
            defer { mismatch = now }
            return mismatch
        }
        guard now != before else { return }
        if let now {
            let consequence =
                now.inMajority
                ? "Most nodes share this node's settings, so it stays ready; fix the others."
                : "It reports not ready until they match (docs/scaling.md, \"Settings every node shares\")."
            logger.error(
                "This node's settings differ from other nodes' on the same database: \(now.description). \(consequence)"
            )
        } else {
            logger.notice("This node's settings match every other node's again")
        }
    }

    /// Records users who came online or went offline on other nodes; those with no connection
    /// here are announced to the connections here.
    private func presenceChangedElsewhere(_ changes: [UserID: Bool]) {
        for (user, online) in changes {
            hub.setOnlineElsewhere(user, online)
            if !hub.isOnlineHere(user) { presenceChanges.yield((user, online)) }
        }
    }

    /// Announces presence changes from other nodes to the members of the user's chats, off
    /// the listener's path (it reads the user's chats).
    private func announcePresenceChanges() async {
        for await (user, online) in presenceChangesToAnnounce {
            guard hub.isOnline(user) == online else { continue }
            do {
                hub.announcePresence(of: user, online: online, chats: try await store.chatIDs(of: user))
            } catch  where !Task.isCancelled {
                logger.warning("Could not announce presence", metadata: ["error": "\(error)"])
            } catch {}
        }
    }
}

/// The LISTEN connection heard nothing, not even this node's own probes, for `silence`.
struct ListenerWentSilent: Error, CustomStringConvertible {
    let silence: Duration

    var description: String {
        "the LISTEN connection heard nothing for \(silence) (a network that loses packets, or a transaction-pooling "
            + "pooler between: see DATABASE_LISTEN_URL)"
    }
}
