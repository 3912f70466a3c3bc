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

    private let shards: [Shard]
    private let registry = Mutex(Registry())
    /// Users with a connection on another node (see ``ClusterLink``).
    private let onlineElsewhere = Mutex<Set<UserID>>([])
    private let store: any ChatDirectory & MessageLog
    private let limits: Limits
    private let gapFills: AsyncStream<GapFill>.Continuation
    private let gapFillRequests: AsyncStream<GapFill>
    private let metrics: ChatMetrics
    private let logger: Logger

    /// The hub's tunables.
    public struct Limits: Sendable {
        /// Most connections one user may hold on this node.
        public var connectionsPerUser: Int
        /// Most frames held for a connection while it catches up (as its outbox's capacity).
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
        store: any ChatDirectory & MessageLog, limits: Limits, shardCount: Int = 16, metrics: ChatMetrics = .disabled,
        logger: Logger
    ) {
        self.store = store
        self.limits = limits
        self.metrics = metrics
        self.shards = (0..<max(1, shardCount)).map { _ in Shard() }
        (self.gapFillRequests, self.gapFills) = AsyncStream.makeStream(of: GapFill.self)
        self.logger = logger
    }

    // MARK: Connections

    /// Registers a connection and subscribes it to `chats`, holding their live frames until
    /// ``release(_:)`` so that the caller can send `ready` first.
    /// - Parameter chats: each chat with its `last_seq` as just read from the store.
    /// - Returns: the position where live delivery starts for each chat (what `ready` reports),
    ///   and whether this is the user's first connection (they came online).
    public func connect(
        _ connection: ChatConnection, chats: [(ChatID, lastSeq: Int64)]
    ) throws
        -> (positions: [ChatID: Int64], cameOnline: Bool)
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
        var positions: [ChatID: Int64] = [:]
        for (chat, lastSeq) in chats where connection.accepts(chat) {
            positions[chat] = subscribe(connection, to: chat, lastSeq: lastSeq, held: true)
        }
        return (positions, cameOnline)
    }

    /// Ends the hold started by ``connect(_:chats:)``: everything that arrived meanwhile is
    /// delivered, in order.
    public func release(_ connection: ChatConnection) {
        for chat in connection.chats {
            shard(chat).state.withLock { $0.endHold(connection, chat: chat, catchUp: nil) }
        }
    }

    /// Unsubscribes a closed connection. Returns true when it was the user's last (they went
    /// offline).
    public func disconnect(_ connection: ChatConnection) -> Bool {
        for chat in connection.markGone() {
            shard(chat).state.withLock { $0.unsubscribe(connection.id, from: chat) }
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
    public func closeConnections(tokenID: String, code: UInt16, reason: String) {
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
        shards.flatMap { shard in shard.state.withLock { Array($0.channels.keys) } }
    }

    // MARK: Messages

    /// Hands the hub a committed message.
    /// - Returns: whether the sending connection gets its `ack` from the hub, in `seq` order.
    ///   When false (the connection stopped following the chat, or a gap fill delivered the
    ///   message first as a plain `message`), the caller sends the `ack` directly.
    @discardableResult
    public func publish(_ publication: Publication) -> Bool {
        let chat = publication.message.chatID
        let (originAcked, needsGapFill, deliveries) = shard(chat).state.withLock {
            $0.publish(publication, heldLimit: limits.heldFrames)
        }
        metrics.messagesDelivered(deliveries)
        if needsGapFill { gapFills.yield(GapFill(chat: chat, urgent: false)) }
        return originAcked
    }

    /// Sends a frame to every connection following `chat`, except those of `excludedUser`.
    public func broadcast(_ frame: ServerFrame, to chat: ChatID, excludingUser excludedUser: UserID? = nil) {
        let encoded = FrameEncoding.encode(frame)
        shard(chat).state.withLock {
            $0.broadcast(encoded, to: chat, excludingUser: excludedUser, heldLimit: limits.heldFrames)
        }
    }

    /// Sends `presence` for `user` to every other connection following a chat the user is in.
    public func announcePresence(of user: UserID, online: Bool, chats: some Sequence<ChatID>) {
        let frame = FrameEncoding.encode(.presence(userID: user, online: online))
        var reached: Set<ConnectionID> = []
        for chat in chats {
            let subscribers = shard(chat).state.withLock {
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
        shard(chat).state.withLock { $0.sendStarted(key, by: connection.id, in: chat) }
    }

    /// Ends a send that will not be published: it failed, or it was a duplicate.
    public func sendEnded(_ connection: ChatConnection, clientID: String, in chat: ChatID) {
        let key = SendKey(sender: connection.userID, clientID: clientID)
        shard(chat).state.withLock { $0.sendEnded(key, by: connection.id, in: chat) }
    }

    /// Tells the hub that `chat` holds committed messages up to `lastSeq`, as another node or
    /// the store reports: those this node has not delivered are read from the store after
    /// ``Limits/remoteGathering``, not after the grace period.
    public func committed(in chat: ChatID, upTo lastSeq: Int64) {
        let needsGapFill = shard(chat).state.withLock { $0.committed(in: chat, upTo: lastSeq) }
        if needsGapFill { gapFills.yield(GapFill(chat: chat, urgent: true)) }
    }

    // MARK: Catching up

    /// Holds the connection's live frames for `chat` while it catches up from the store.
    /// - Returns: false when the connection does not follow the chat.
    public func beginCatchUp(_ connection: ChatConnection, chat: ChatID) -> Bool {
        shard(chat).state.withLock { $0.beginHold(connection.id, chat: chat) }
    }

    /// Sends the catch-up `messages` (in `seq` order, all after `afterSeq`), then what was
    /// held, without gap or repeat, then `resumed`, and resumes live delivery. With `afterSeq`
    /// nil the catch-up was abandoned and delivery continues where it was.
    public func endCatchUp(
        _ connection: ChatConnection, chat: ChatID, afterSeq: Int64?, messages: [(seq: Int64, frame: ByteBuffer)]
    ) {
        shard(chat).state.withLock { state in
            state.endHold(connection, chat: chat, catchUp: afterSeq.map { ($0, messages) })
        }
    }

    // MARK: Membership

    /// Starts delivering `chat` to the new member's connections, with a `member_added`
    /// frame carrying the chat and the position where delivery starts; tells everyone else.
    public func memberAdded(_ details: ChatDetails, user: UserID) {
        let chat = details.chat.id
        let othersFrame = FrameEncoding.encode(.memberAdded(chatID: chat, userID: user, chat: nil))
        shard(chat).state.withLock {
            $0.broadcast(othersFrame, to: chat, excludingUser: user, heldLimit: limits.heldFrames)
        }
        join(connections(of: user), to: details)
    }

    /// Subscribes `connections` to a chat at its current position and sends each a
    /// `member_added` frame for its own user, carrying the chat.
    private func join(_ connections: [ChatConnection], to details: ChatDetails) {
        let chat = details.chat.id
        shard(chat).state.withLock { state in
            for connection in connections where connection.accepts(chat) {
                guard let position = state.subscribe(connection, to: chat, lastSeq: details.chat.lastSeq, held: false)
                else { continue }
                let readyChat = ReadyChat(details, lastSeq: position, isOnline: isOnline)
                connection.outbox.offer(
                    FrameEncoding.encode(.memberAdded(chatID: chat, userID: connection.userID, chat: readyChat)))
            }
        }
    }

    /// Stops delivering `chat` to the removed member's connections at once (they get a
    /// `member_removed` frame last) and tells everyone else.
    public func memberRemoved(chat: ChatID, user: UserID) {
        let frame = FrameEncoding.encode(.memberRemoved(chatID: chat, userID: user))
        shard(chat).state.withLock { state in
            let leaving = (state.channels[chat]?.subscribers.values.map(\.connection) ?? []).filter {
                $0.userID == user
            }
            for connection in leaving {
                state.unsubscribe(connection.id, from: chat)
                connection.outbox.offer(frame)
            }
            state.broadcast(frame, to: chat, excludingUser: nil, heldLimit: limits.heldFrames)
        }
    }

    /// Rebuilds, from the store, which chats every connection on this node follows, without
    /// disconnecting anyone: connections join chats their user was added to and leave chats
    /// their user left, with `member_added` / `member_removed` frames.
    /// - Returns: the users and connections checked.
    public func resync() async throws -> (users: Int, connections: Int) {
        var checked = (users: 0, connections: 0)
        for user in onlineUsers() {
            let wanted = Dictionary(
                uniqueKeysWithValues: try await store.chatDetails(for: user).map { ($0.chat.id, $0) })
            let connections = connections(of: user)
            checked.users += 1
            checked.connections += connections.count
            for connection in connections {
                let following = connection.chats
                for (chat, details) in wanted where !following.contains(chat) {
                    join([connection], to: details)
                }
                let leftFrame = { (chat: ChatID) in FrameEncoding.encode(.memberRemoved(chatID: chat, userID: user)) }
                for chat in following where wanted[chat] == nil {
                    shard(chat).state.withLock { $0.unsubscribe(connection.id, from: chat) }
                    connection.outbox.offer(leftFrame(chat))
                }
            }
        }
        return checked
    }

    // MARK: Gap filling

    /// Reads missing `seq`s from the store: soon for messages committed elsewhere, after the
    /// grace period for a gap among this node's own publications.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for await fill in gapFillRequests.cancelOnGracefulShutdown() {
                group.addTask { await self.fillGap(fill) }
            }
            group.cancelAll()
        }
    }

    private func fillGap(_ fill: GapFill) async {
        let chat = fill.chat
        // A message published on this node out of order usually comes soon; one committed
        // elsewhere never comes unless read, soon, with whatever else was committed meanwhile.
        try? await Task.sleep(for: fill.urgent ? limits.remoteGathering : limits.gapGrace)
        if let gap = shard(chat).state.withLock({ $0.gap(in: chat) }) {
            await read(gap, of: chat)
        }
        if let next = shard(chat).state.withLock({ $0.finishGapFill(fill) }) { gapFills.yield(next) }
    }

    /// Reads and publishes the missing messages, or waits a moment when the store fails.
    private func read(_ gap: (after: Int64, count: Int), of chat: ChatID) async {
        do {
            let (missing, members) = try await store.messagesAndMembers(
                in: chat, after: gap.after, limit: gap.count)
            if !missing.isEmpty {
                // A member's removal may reach this node (from another) after messages stored
                // since: the members read with them tell who may no longer have them.
                shard(chat).state.withLock { $0.unsubscribe(from: chat, allBut: members) }
            }
            for message in missing {
                _ = publish(Publication(message, origin: nil))
            }
            logger.debug("Filled a gap", metadata: ["chat.chat_id": "\(chat)", "chat.count": "\(missing.count)"])
        } catch {
            logger.warning(
                "Could not fill a gap; retrying", metadata: ["chat.chat_id": "\(chat)", "error": "\(error)"])
            try? await Task.sleep(for: limits.gapRetryDelay)
        }
    }

    // MARK: Helpers

    private func shard(_ chat: ChatID) -> Shard {
        shards[Int(UInt64(bitPattern: chat.rawValue) % UInt64(shards.count))]
    }

    private func subscribe(_ connection: ChatConnection, to chat: ChatID, lastSeq: Int64, held: Bool) -> Int64? {
        shard(chat).state.withLock { $0.subscribe(connection, to: chat, lastSeq: lastSeq, held: held) }
    }
}

extension ChatHub: ChatEvents {
    public func markedRead(chat: ChatID, user: UserID, seq: Int64) {
        broadcast(.read(chatID: chat, userID: user, seq: seq), to: chat)
    }

    public func typing(chat: ChatID, user: UserID) {
        broadcast(.typing(chatID: chat, userID: user), to: chat, excludingUser: user)
    }

    public func presenceChanged(of user: UserID, online: Bool, chats: Set<ChatID>) {
        announcePresence(of: user, online: online, chats: chats)
    }

    /// Closes the revoked session's connections with 1008 (policy violation).
    public func sessionRevoked(tokenID: String) {
        closeConnections(tokenID: tokenID, code: CloseCode.sessionEnded.rawValue, reason: "session ended")
    }

    public func sessionsEnded(of user: UserID) {
        for connection in connections(of: user) {
            connection.outbox.close(.closing(code: CloseCode.sessionEnded.rawValue, reason: "session ended"))
        }
    }
}

/// A request to read a chat's missing `seq`s; an urgent one (messages committed elsewhere)
/// waits only ``ChatHub/Limits/remoteGathering``, not the grace period.
private struct GapFill: Sendable {
    let chat: ChatID
    let urgent: Bool
}

/// The users and connections on this node.
private struct Registry {
    var connections: [UserID: [ConnectionID: ChatConnection]] = [:]
}

/// One lock's worth of chats.
private final class Shard: Sendable {
    let state = Mutex(ShardState())
}

/// A chat's live state on this node, kept while anyone here follows it. A class, so that a
/// delivery updates subscriptions in place under the shard's lock.
private final class Channel {
    /// The last `seq` delivered to subscribers.
    var top: Int64
    /// The highest `seq` known to be committed: above `top` while messages from another node
    /// are being read.
    var known: Int64
    var subscribers: [ConnectionID: Subscription] = [:]
    /// Messages that arrived before a lower `seq`, by `seq`.
    var pending: [Int64: ChatHub.Publication] = [:]
    /// Gap fills requested and not finished: at most one urgent one and one that waits out the
    /// grace period.
    var gapFillsInFlight = 0
    var urgentGapFillInFlight = false
    /// Sends on this node that are being stored, by sender and client id: if a gap fill
    /// delivers one of them first, its connection still gets its `ack` in order.
    var sendsInFlight: [SendKey: Set<ConnectionID>] = [:]
    /// Sends a gap fill read from the store while their connection was still storing them,
    /// and that connection: it waits for its own publication, which says whether this send
    /// stored the message or found it stored (another attempt, another node).
    var awaitingAck: [SendKey: (connection: ConnectionID, seq: Int64)] = [:]

    init(top: Int64) {
        self.top = top
        self.known = top
    }

    /// For a message read from the store: the connection that is still storing it, when
    /// exactly one connection here sent that client id. It then awaits its `ack`.
    func takeStoringSender(of message: Message) -> ConnectionID? {
        guard let key = SendKey(message), let senders = sendsInFlight[key], senders.count == 1,
            let sender = senders.first
        else { return nil }
        sendsInFlight[key] = nil
        awaitingAck[key] = (sender, message.seq)
        return sender
    }
}

/// A send, identified as the store deduplicates it.
struct SendKey: Hashable {
    let sender: UserID
    let clientID: String

    init(sender: UserID, clientID: String) {
        self.sender = sender
        self.clientID = clientID
    }

    init?(_ message: Message) {
        guard let clientID = message.clientID else { return nil }
        self.init(sender: message.senderID, clientID: clientID)
    }
}

/// One connection following one chat.
private final class Subscription {
    let connection: ChatConnection
    /// The last `seq` this connection was given.
    var cursor: Int64
    /// Frames kept back while the connection catches up: messages with their `seq`, other
    /// events with none.
    var held: [(seq: Int64?, frame: ByteBuffer)]?
    /// Messages of this connection's own sends that a gap fill read first, by `seq`: each
    /// stands in `held` for its `ack` until the ack comes.
    var awaitedAcks: Set<Int64> = []
    /// Whether `held` is kept only for awaited acks, not for a catch-up.
    var holdIsForAcks = false

    init(connection: ChatConnection, cursor: Int64, held: Bool) {
        self.connection = connection
        self.cursor = cursor
        self.held = held ? [] : nil
    }

    /// Gives the connection a frame: held while it catches up, otherwise to its outbox,
    /// skipping messages it already has.
    func deliver(_ frame: ByteBuffer, seq: Int64?, heldLimit: Int) {
        if held != nil {
            guard held?.count ?? 0 < heldLimit else {
                connection.outbox.close(.slowConsumer)
                return
            }
            held?.append((seq, frame))
            return
        }
        if let seq {
            guard seq > cursor else { return }
            cursor = seq
        }
        connection.outbox.offer(frame)
    }

    /// Holds the message `seq` (its `frame`) and what follows it until its ack comes.
    func awaitAck(seq: Int64, frame: ByteBuffer) {
        if held == nil { (held, holdIsForAcks) = ([], true) }
        held?.append((seq, frame))
        awaitedAcks.insert(seq)
    }

    /// Puts the `ack` of message `seq` in its place (with nil the message stays: its send
    /// ended without one), and releases a hold kept only for acks once none is awaited.
    /// - Returns: false when that ack was not awaited.
    func receiveAck(seq: Int64, _ ackFrame: ByteBuffer?) -> Bool {
        guard awaitedAcks.remove(seq) != nil else { return false }
        if let ackFrame, let index = held?.firstIndex(where: { $0.seq == seq }) { held?[index].frame = ackFrame }
        if awaitedAcks.isEmpty && holdIsForAcks {
            let frames = held ?? []
            (held, holdIsForAcks) = (nil, false)
            for item in frames { deliver(item.frame, seq: item.seq, heldLimit: 0) }
        }
        return true
    }
}

/// The chats of one shard. Only touched under the shard's lock.
private struct ShardState {
    var channels: [ChatID: Channel] = [:]

    /// - Returns: the position where delivery starts, or nil when the connection is gone.
    mutating func subscribe(_ connection: ChatConnection, to chat: ChatID, lastSeq: Int64, held: Bool) -> Int64? {
        guard connection.track(chat) else { return nil }
        // A new channel starts at the store's end: anything before it is history.
        let channel = channels[chat] ?? Channel(top: lastSeq)
        channels[chat] = channel
        channel.subscribers[connection.id] = Subscription(connection: connection, cursor: channel.top, held: held)
        return channel.top
    }

    mutating func unsubscribe(_ connection: ConnectionID, from chat: ChatID) {
        guard let channel = channels[chat], let subscription = channel.subscribers.removeValue(forKey: connection)
        else { return }
        subscription.connection.untrack(chat)
        for (key, senders) in channel.sendsInFlight where senders.contains(connection) {
            channel.sendsInFlight[key]?.remove(connection)
        }
        channel.awaitingAck = channel.awaitingAck.filter { $0.value.connection != connection }
        if channel.subscribers.isEmpty { channels[chat] = nil }
    }

    /// Unsubscribes the connections of users not in `members`; each gets a `member_removed`
    /// frame (the other members hear of it from the removal itself).
    mutating func unsubscribe(from chat: ChatID, allBut members: Set<UserID>) {
        let leaving = (channels[chat]?.subscribers.values.map(\.connection) ?? []).filter {
            !members.contains($0.userID)
        }
        for connection in leaving {
            unsubscribe(connection.id, from: chat)
            connection.outbox.offer(FrameEncoding.encode(.memberRemoved(chatID: chat, userID: connection.userID)))
        }
    }

    /// Delivers the publication and whatever it unblocks, in `seq` order.
    /// - Returns: whether the sending connection gets its `ack` from the hub, whether a gap
    ///   fill should be requested, and how many frames were handed to connections.
    func publish(
        _ publication: ChatHub.Publication, heldLimit: Int
    ) -> (
        originAcked: Bool, needsGapFill: Bool, deliveries: Int
    ) {
        guard let channel = channels[publication.message.chatID] else { return (false, false, 0) }
        let seq = publication.message.seq
        let key = SendKey(publication.message)
        if let origin = publication.origin, let key {
            channel.sendsInFlight[key]?.remove(origin.id)
            if channel.sendsInFlight[key]?.isEmpty == true { channel.sendsInFlight[key] = nil }
            if seq <= channel.top {
                // A gap fill delivered it first; this connection awaits its ack if it was the
                // only sender.
                guard channel.awaitingAck[key]?.connection == origin.id else { return (false, false, 0) }
                channel.awaitingAck[key] = nil
                let acked = channel.subscribers[origin.id]?.receiveAck(seq: seq, origin.ackFrame) ?? false
                return (acked, false, 0)
            }
        }
        guard seq > channel.top else { return (false, false, 0) }
        if let queued = channel.pending[seq], queued.origin != nil || publication.origin == nil {
            return (false, false, 0)
        }
        // Queued, or replacing a copy from the store: the local one carries the ack.
        channel.pending[seq] = publication
        let originAcked = publication.origin.map { channel.subscribers[$0.id] != nil } ?? false
        var deliveries = 0
        while let next = channel.pending.removeValue(forKey: channel.top + 1) {
            channel.top += 1
            deliveries += channel.subscribers.count
            let storingSender = next.origin == nil ? channel.takeStoringSender(of: next.message) : nil
            for (id, subscription) in channel.subscribers {
                if id == storingSender {
                    subscription.awaitAck(seq: next.message.seq, frame: next.frame)
                } else {
                    subscription.deliver(
                        next.origin?.id == id ? next.origin?.ackFrame ?? next.frame : next.frame,
                        seq: next.message.seq, heldLimit: heldLimit)
                }
            }
        }
        let needsGapFill = !channel.pending.isEmpty && channel.gapFillsInFlight == 0
        if needsGapFill { channel.gapFillsInFlight += 1 }
        return (originAcked, needsGapFill, deliveries)
    }

    /// Notes a send being stored, so that a gap fill can ack it.
    func sendStarted(_ key: SendKey, by connection: ConnectionID, in chat: ChatID) {
        channels[chat]?.sendsInFlight[key, default: []].insert(connection)
    }

    /// Forgets a send that will not be published (it failed, or went to another chat). If
    /// its connection awaits the ack of a message a gap fill read, it gets the message.
    func sendEnded(_ key: SendKey, by connection: ConnectionID, in chat: ChatID) {
        guard let channel = channels[chat] else { return }
        channel.sendsInFlight[key]?.remove(connection)
        if channel.sendsInFlight[key]?.isEmpty == true { channel.sendsInFlight[key] = nil }
        if let awaiting = channel.awaitingAck[key], awaiting.connection == connection {
            channel.awaitingAck[key] = nil
            _ = channel.subscribers[connection]?.receiveAck(seq: awaiting.seq, nil)
        }
    }

    func broadcast(_ frame: ByteBuffer, to chat: ChatID, excludingUser: UserID?, heldLimit: Int) {
        for subscription in channels[chat]?.subscribers.values ?? [:].values
        where subscription.connection.userID != excludingUser {
            subscription.deliver(frame, seq: nil, heldLimit: heldLimit)
        }
    }

    func beginHold(_ connection: ConnectionID, chat: ChatID) -> Bool {
        guard let subscription = channels[chat]?.subscribers[connection] else { return false }
        if subscription.held == nil { subscription.held = [] }
        subscription.holdIsForAcks = false
        return true
    }

    /// Delivers catch-up messages (if any) and then the held frames, skipping any `seq` the
    /// connection already has.
    func endHold(
        _ connection: ChatConnection, chat: ChatID,
        catchUp: (afterSeq: Int64, messages: [(seq: Int64, frame: ByteBuffer)])?
    ) {
        guard let subscription = channels[chat]?.subscribers[connection.id] else { return }
        // An ack still awaited would come after the catch-up: its message stays in its place,
        // and the ack follows directly when the send ends.
        subscription.awaitedAcks = []
        let held = subscription.held ?? []
        subscription.held = nil
        if let catchUp {
            subscription.cursor = catchUp.afterSeq
            for message in catchUp.messages {
                subscription.deliver(message.frame, seq: message.seq, heldLimit: 0)
            }
        }
        for item in held {
            subscription.deliver(item.frame, seq: item.seq, heldLimit: 0)
        }
        if catchUp != nil {
            subscription.deliver(
                FrameEncoding.encode(.resumed(chatID: chat, lastSeq: subscription.cursor)), seq: nil, heldLimit: 0)
        }
    }

    /// Notes that `chat` holds messages up to `lastSeq`; returns true when an urgent gap fill
    /// should be requested (none is under way).
    func committed(in chat: ChatID, upTo lastSeq: Int64) -> Bool {
        guard let channel = channels[chat] else { return false }
        channel.known = max(channel.known, lastSeq)
        guard channel.known > channel.top, !channel.urgentGapFillInFlight else { return false }
        channel.gapFillsInFlight += 1
        channel.urgentGapFillInFlight = true
        return true
    }

    /// The missing range after the last delivered `seq`: up to the highest known or pending
    /// one (at most a page), or nil when nothing is missing.
    func gap(in chat: ChatID) -> (after: Int64, count: Int)? {
        guard let channel = channels[chat] else { return nil }
        let end = max(channel.known, (channel.pending.keys.min() ?? 0) - 1)
        guard end > channel.top else { return nil }
        return (channel.top, Int(min(end - channel.top, Int64(ChatService.maxHistoryLimit))))
    }

    /// Ends a gap fill; returns the next one when a gap remains that no fill under way covers.
    func finishGapFill(_ fill: GapFill) -> GapFill? {
        guard let channel = channels[fill.chat] else { return nil }
        // At least 0: the channel may be a new one, made after the fill started.
        channel.gapFillsInFlight = max(0, channel.gapFillsInFlight - 1)
        if fill.urgent { channel.urgentGapFillInFlight = false }
        guard gap(in: fill.chat) != nil else { return nil }
        let urgent = channel.known > channel.top
        guard urgent ? !channel.urgentGapFillInFlight : channel.gapFillsInFlight == 0 else { return nil }
        channel.gapFillsInFlight += 1
        if urgent { channel.urgentGapFillInFlight = true }
        return GapFill(chat: fill.chat, urgent: urgent)
    }
}

extension ReadyChat {
    /// A chat as a connection starts following it at `lastSeq`.
    init(_ details: ChatDetails, lastSeq: Int64, isOnline: (UserID) -> Bool) {
        let chat = details.chat
        self.init(
            id: chat.id, name: chat.name, chatType: chat.type, creatorID: chat.creatorID, lastSeq: lastSeq,
            members: details.members.map {
                ReadyMember(userID: $0.userID, name: $0.name, readSeq: $0.readSeq, online: isOnline($0.userID))
            })
    }
}
