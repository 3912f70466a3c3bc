import ChatProtocol
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The node's real-time core: which connection follows which chat, and delivery of each
/// chat's committed messages to them in `seq` order.
///
/// Its input is, per chat, the sequence of committed messages: ``publish(_:)`` may be called
/// in any order (commits finish in `seq` order, but their results reach the server in any
/// order), and the hub delivers strictly by `seq`. When a `seq` is missing for longer than a
/// short grace period, the hub reads it from the store, so a lost publication never leaves a
/// gap. Messages committed by other nodes arrive the same way, within milliseconds: see
/// ``committed(in:upTo:)``.
///
/// Chats are sharded by id; every operation takes one shard's lock briefly and offers
/// pre-encoded frames to bounded outboxes, so the hub never waits for a client.
public final class ChatHub: Service {
    /// A committed message ready for delivery.
    public struct Publication: Sendable {
        public let message: Message
        /// The `message` frame every other connection gets.
        let frame: ByteBuffer
        /// The connection that sent it and the `ack` frame it gets instead.
        let origin: (id: ConnectionID, ackFrame: ByteBuffer)?

        /// - Parameters:
        ///   - origin: the sending connection and its client id, when sent on this node.
        ///   - duplicate: whether the send repeated a stored one (its `ack` says so).
        public init(_ message: Message, origin: (ConnectionID, clientID: String)?, duplicate: Bool = false) {
            self.message = message
            let payload = MessagePayload(message, isRead: false)
            self.frame = FrameEncoding.encode(.message(payload))
            self.origin = origin.map {
                ($0.0, FrameEncoding.encode(.ack(clientID: $0.clientID, message: payload, duplicate: duplicate)))
            }
        }
    }

    /// Why a connection may not join.
    public enum ConnectError: Error, Equatable {
        case tooManyConnections(limit: Int)
    }

    let shards: [Shard]
    let registry = Mutex(Registry())
    /// Users with a connection on another node (see ``ClusterLink``).
    let onlineElsewhere = Mutex<Set<UserID>>([])
    let store: any ChatDirectory & MessageLog
    let limits: Limits
    /// What the hub's waits (a gap's grace, a retry's pause) run on: a test's clock moves
    /// only when the test says.
    let clock: any Clock<Duration>
    let gapFills: AsyncStream<GapFill>.Continuation
    let gapFillRequests: AsyncStream<GapFill>
    /// Chats whose edits and deletions are to be read and delivered.
    let updateReads: AsyncStream<ChatID>.Continuation
    let updateReadRequests: AsyncStream<ChatID>
    let metrics: ChatMetrics
    let logger: Logger
    /// Where the outboxes of this node's connections are drained, one per event loop.
    public let deliveryLoops = DeliveryLoops()

    /// The hub's tunables.
    public struct Limits: Sendable {
        /// Most connections one user may hold on this node.
        public var connectionsPerUser: Int
        /// Most frames held for a connection while it catches up (as its outbox's frame limit).
        public var heldFrames: Int
        /// How long a missing `seq` may be awaited before it is read from the store.
        public var gapGrace: Duration
        /// How long to wait before reading a gap again after the store failed.
        public var gapRetryDelay: Duration = .milliseconds(500)
        /// How long messages committed elsewhere are gathered before they are read: one read
        /// then serves every commit notified meanwhile (docs/scaling.md).
        public var remoteGathering: Duration = .milliseconds(3)

        public init(connectionsPerUser: Int, heldFrames: Int, gapGrace: Duration = .milliseconds(50)) {
            self.connectionsPerUser = connectionsPerUser
            self.heldFrames = heldFrames
            self.gapGrace = gapGrace
        }
    }

    public init(
        store: any ChatDirectory & MessageLog, limits: Limits, shardCount: Int = 16,
        clock: any Clock<Duration> = ContinuousClock(), metrics: ChatMetrics = .disabled, logger: Logger
    ) {
        self.store = store
        self.limits = limits
        self.clock = clock
        self.metrics = metrics
        self.shards = (0..<max(1, shardCount)).map { _ in Shard() }
        (self.gapFillRequests, self.gapFills) = AsyncStream.makeStream(of: GapFill.self)
        (self.updateReadRequests, self.updateReads) = AsyncStream.makeStream(of: ChatID.self)
        self.logger = logger
    }

    // MARK: Connections

    /// Registers a connection and subscribes it to `chats`, holding their live frames until
    /// ``release(_:)`` so that the caller can send `ready` first.
    /// - Parameter chats: each chat with its last `seq` and `update_seq` as just read from the store.
    /// - Returns: the position where live delivery starts for each chat (what `ready` reports),
    ///   and whether this is the user's first connection (they came online).
    public func connect(
        _ connection: ChatConnection, chats: [(ChatID, start: LivePosition)]
    ) throws
        -> (positions: [ChatID: LivePosition], cameOnline: Bool)
    {
        let cameOnline = try registry.withLock { registry in
            let existing = registry.connections[connection.userID, default: [:]]
            guard existing.count < limits.connectionsPerUser else {
                throw ConnectError.tooManyConnections(limit: limits.connectionsPerUser)
            }
            registry.connections[connection.userID, default: [:]][connection.id] = connection
            return existing.isEmpty
        }
        metrics.connectionOpened(cameOnline: cameOnline)
        var positions: [ChatID: LivePosition] = [:]
        for (chat, start) in chats where connection.accepts(chat) {
            positions[chat] = shard(chat).ordering.withLock {
                $0.subscribe(connection, to: chat, at: start, held: true)
            }
        }
        return (positions, cameOnline)
    }

    /// Ends the hold started by ``connect(_:chats:)``: everything that arrived meanwhile is
    /// delivered, in order.
    public func release(_ connection: ChatConnection) {
        for chat in connection.chats {
            shard(chat).ordering.withLock { $0.endHold(connection, chat: chat, catchUp: nil) }
        }
    }

    /// Unsubscribes a closed connection. Returns true when it was the user's last (they went
    /// offline).
    public func disconnect(_ connection: ChatConnection) -> Bool {
        for chat in connection.markGone() {
            shard(chat).ordering.withLock { $0.unsubscribe(connection.id, from: chat) }
        }
        let wentOffline = registry.withLock { registry in
            registry.connections[connection.userID]?[connection.id] = nil
            guard registry.connections[connection.userID]?.isEmpty == true else { return false }
            registry.connections[connection.userID] = nil
            return true
        }
        metrics.connectionClosed(wentOffline: wentOffline)
        return wentOffline
    }

    /// Whether the user has a connection on this node or, as far as this node knows, on another.
    public func isOnline(_ user: UserID) -> Bool {
        isOnlineHere(user) || onlineElsewhere.withLock { $0.contains(user) }
    }

    /// Whether the user has a connection on this node.
    public func isOnlineHere(_ user: UserID) -> Bool {
        registry.withLock { $0.connections[user] != nil }
    }

    /// Records whether the user has a connection on another node.
    public func setOnlineElsewhere(_ user: UserID, _ online: Bool) {
        onlineElsewhere.withLock { (users) -> Void in
            if online { users.insert(user) } else { users.remove(user) }
        }
    }

    /// Whether the connection follows `chat`.
    public func isSubscribed(_ connection: ChatConnection, to chat: ChatID) -> Bool {
        connection.chats.contains(chat)
    }

    /// Closes every connection opened with the session token `tokenID` (it was revoked).
    public func closeConnections(tokenID: String, code: CloseCode, reason: String) {
        let connections = registry.withLock { $0.connections.values.flatMap(\.values) }
        for connection in connections where connection.tokenID == tokenID {
            connection.outbox.close(.closing(code: code, reason: reason))
        }
    }

    /// Counts for the admin sync endpoint.
    public func counts() -> (users: Int, connections: Int) {
        registry.withLock { ($0.connections.count, $0.connections.values.reduce(0) { $0 + $1.count }) }
    }

    /// The connections of `user` on this node.
    func connections(of user: UserID) -> [ChatConnection] {
        registry.withLock { Array(($0.connections[user] ?? [:]).values) }
    }

    /// Every user with a connection on this node.
    func onlineUsers() -> [UserID] {
        registry.withLock { Array($0.connections.keys) }
    }

    /// Every chat that a connection on this node follows.
    func followedChats() -> [ChatID] {
        shards.flatMap { shard in shard.ordering.withLock { Array($0.channels.keys) } }
    }

    // MARK: Messages

    /// Hands the hub a committed message.
    /// - Returns: whether the sending connection gets its `ack` from the hub, in `seq` order.
    ///   When false (the connection stopped following the chat, or a gap fill delivered the
    ///   message first as a plain `message`), the caller sends the `ack` directly.
    @discardableResult
    public func publish(_ publication: Publication) -> Bool {
        let chat = publication.message.chatID
        let (originAcked, needsGapFill, deliveries) = shard(chat).ordering.withLock {
            $0.publish(publication, heldLimit: limits.heldFrames)
        }
        metrics.messagesDelivered(deliveries)
        if needsGapFill { gapFills.yield(GapFill(chat: chat, urgent: false)) }
        return originAcked
    }

    /// Sends a frame to every connection following `chat`, except those of `excludedUser`.
    public func broadcast(_ frame: ServerFrame, to chat: ChatID, excludingUser excludedUser: UserID? = nil) {
        let encoded = FrameEncoding.encode(frame)
        shard(chat).ordering.withLock {
            $0.broadcast(encoded, to: chat, excludingUser: excludedUser, heldLimit: limits.heldFrames)
        }
    }

    /// Sends `presence` for `user` to every other connection following a chat the user is in.
    public func announcePresence(of user: UserID, online: Bool, chats: some Sequence<ChatID>) {
        let frame = FrameEncoding.encode(.presence(userID: user, online: online))
        var reached: Set<ConnectionID> = []
        for chat in chats {
            let subscribers = shard(chat).ordering.withLock {
                $0.channels[chat]?.subscribers.values.map(\.connection) ?? []
            }
            for connection in subscribers where connection.userID != user && reached.insert(connection.id).inserted {
                connection.outbox.offer(frame)
            }
        }
    }

    /// Notes that `connection` is storing a message with `clientID`, before it asks the store.
    /// Every call is followed by ``publish(_:)`` of the stored message or by
    /// ``sendEnded(_:clientID:in:)``.
    public func sendStarted(_ connection: ChatConnection, clientID: String, in chat: ChatID) {
        let key = SendKey(sender: connection.userID, clientID: clientID)
        shard(chat).ordering.withLock { $0.sendStarted(key, by: connection.id, in: chat) }
    }

    /// Ends a send that will not be published: it failed, or it was a duplicate.
    public func sendEnded(_ connection: ChatConnection, clientID: String, in chat: ChatID) {
        let key = SendKey(sender: connection.userID, clientID: clientID)
        shard(chat).ordering.withLock { $0.sendEnded(key, by: connection.id, in: chat) }
    }

    /// Tells the hub that `chat` holds committed messages up to `lastSeq`, as another node or
    /// the store reports: those this node has not delivered are read from the store after
    /// ``Limits/remoteGathering``, not after the grace period.
    public func committed(in chat: ChatID, upTo lastSeq: Int64) {
        let needsGapFill = shard(chat).ordering.withLock { $0.committed(in: chat, upTo: lastSeq) }
        if needsGapFill { gapFills.yield(GapFill(chat: chat, urgent: true)) }
    }

    // MARK: Catching up

    /// Holds the connection's live frames for `chat` while it catches up from the store.
    /// - Returns: false when the connection does not follow the chat.
    public func beginCatchUp(_ connection: ChatConnection, chat: ChatID) -> Bool {
        shard(chat).ordering.withLock { $0.beginHold(connection.id, chat: chat) }
    }

    /// Sends the catch-up `frames` (messages with their `seq`, in order, all after `afterSeq`;
    /// other frames with none), then what was held, without gap or repeat, then `resumed`, and
    /// resumes live delivery. `versions` gives the `update_seq` of each message the catch-up
    /// brought: a held update of one of them that is not newer is dropped. With `afterSeq` nil
    /// the catch-up was abandoned and delivery continues where it was.
    public func endCatchUp(
        _ connection: ChatConnection, chat: ChatID, afterSeq: Int64?, frames: [(seq: Int64?, frame: ByteBuffer)],
        versions: [MessageID: Int64] = [:]
    ) {
        shard(chat).ordering.withLock { state in
            state.endHold(connection, chat: chat, catchUp: afterSeq.map { ($0, frames, versions) })
        }
    }

    // MARK: Helpers

    func shard(_ chat: ChatID) -> Shard {
        shards[Int(UInt64(bitPattern: chat.rawValue) % UInt64(shards.count))]
    }
}

/// The users and connections on this node.
struct Registry {
    var connections: [UserID: [ConnectionID: ChatConnection]] = [:]
}

/// One lock's worth of chats.
final class Shard: Sendable {
    let ordering = Mutex(ChatOrdering())
}
