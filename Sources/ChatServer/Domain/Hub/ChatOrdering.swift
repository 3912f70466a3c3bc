import ChatProtocol
import NIOCore

/// The per-chat ordering state machine, for the chats of one hub shard (only touched under
/// that shard's lock). Per chat it keeps the `seq` delivered last, the subscriptions, the
/// publications that came before a lower `seq`, the sends still being stored (so that an
/// `ack` takes its message's place), holds while a connection catches up, and whether a gap
/// should be read from the store. It also keeps where the delivery of edits and deletions
/// stands (``LiveChat/updates``). It knows no store and no network: the hub feeds it
/// publications and acts on its answers, and its tests drive it directly.
struct ChatOrdering {
    var channels: [ChatID: LiveChat] = [:]

    /// - Parameter start: the chat's last `seq` and `update_seq` as just read from the store.
    /// - Returns: the position where delivery starts, or nil when the connection is gone.
    mutating func subscribe(
        _ connection: ChatConnection, to chat: ChatID, at start: LivePosition, held: Bool
    ) -> LivePosition? {
        guard connection.track(chat) else { return nil }
        // A new channel starts at the store's end: anything before it is history.
        let channel = channels[chat] ?? LiveChat(top: start.lastSeq, lastUpdate: start.lastUpdate)
        channels[chat] = channel
        channel.subscribers[connection.id] = Subscription(connection: connection, cursor: channel.top, held: held)
        return LivePosition(lastSeq: channel.top, lastUpdate: channel.updates.delivered)
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

    /// Delivers the catch-up frames (if any) and then the held frames, skipping any `seq` the
    /// connection already has, and any held update of a message older than the state the
    /// catch-up brought (`versions`: message id to `update_seq`).
    func endHold(
        _ connection: ChatConnection, chat: ChatID,
        catchUp: (afterSeq: Int64, frames: [(seq: Int64?, frame: ByteBuffer)], versions: [MessageID: Int64])?
    ) {
        guard let subscription = channels[chat]?.subscribers[connection.id] else { return }
        // An ack still awaited would come after the catch-up: its message stays in its place,
        // and the ack follows directly when the send ends.
        subscription.awaitedAcks = []
        let held = subscription.held ?? []
        subscription.held = nil
        if let catchUp {
            subscription.cursor = catchUp.afterSeq
            for item in catchUp.frames {
                subscription.deliver(item.frame, seq: item.seq, heldLimit: 0)
            }
        }
        for item in held {
            if let version = item.version, let caughtUp = catchUp?.versions[version.message],
                caughtUp >= version.updateSeq
            {
                continue
            }
            subscription.deliver(item.frame, seq: item.seq, heldLimit: 0)
        }
        if catchUp != nil {
            subscription.deliver(
                FrameEncoding.encode(.resumed(chatID: chat, lastSeq: subscription.cursor)), seq: nil, heldLimit: 0)
        }
    }

    // MARK: Edits and deletions

    /// Notes that `chat` holds updates up to `updateSeq`; returns true when a read of them
    /// should start (none is under way).
    func messagesUpdated(in chat: ChatID, upTo updateSeq: Int64) -> Bool {
        guard let updates = channels[chat]?.updates else { return false }
        updates.known = max(updates.known, updateSeq)
        guard updates.known > updates.delivered, !updates.reading else { return false }
        updates.reading = true
        return true
    }

    /// Where the next read of the chat's updates starts: after the last one delivered. Nil
    /// when every known update is delivered (or nobody follows the chat): the read ends.
    func nextUpdateRead(in chat: ChatID) -> Int64? {
        guard let updates = channels[chat]?.updates else { return nil }
        guard updates.known > updates.delivered else {
            updates.reading = false
            return nil
        }
        return updates.delivered
    }

    /// Delivers updated messages read from the store, in `update_seq` order, to every
    /// subscriber. It stops before a message that has not been delivered itself yet (a gap
    /// holds it back): its update must not arrive before it.
    /// - Returns: the `seq` of the message it stopped at, nil when it delivered them all; the
    ///   rest is read again later.
    func deliverUpdates(
        _ updated: [(message: Message, frame: ByteBuffer)], in chat: ChatID, heldLimit: Int
    ) -> Int64? {
        guard let channel = channels[chat] else { return nil }
        for (message, frame) in updated where message.updateSeq > channel.updates.delivered {
            channel.updates.known = max(channel.updates.known, message.updateSeq)
            guard message.seq <= channel.top else { return message.seq }
            let version = MessageVersion(message: message.id, updateSeq: message.updateSeq)
            for subscription in channel.subscribers.values {
                subscription.deliver(frame, seq: nil, version: version, heldLimit: heldLimit)
            }
            channel.updates.delivered = message.updateSeq
        }
        return nil
    }

    // MARK: Gaps

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

/// A chat's live state on this node, kept while anyone here follows it. A class, so that a
/// delivery updates subscriptions in place under the shard's lock.
final class LiveChat {
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
    /// Where delivery of the chat's edits and deletions stands.
    let updates: UpdateDelivery

    init(top: Int64, lastUpdate: Int64) {
        self.top = top
        self.known = top
        self.updates = UpdateDelivery(delivered: lastUpdate)
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

/// Delivery of a chat's edits and deletions. Each takes the chat's next `update_seq` when it
/// commits; the hub reads the updated messages after ``delivered`` from the store, one read
/// at a time, and delivers each message's state as it is then. A message changed twice before
/// a read is delivered once, in its latest state: updates to one message never arrive out of
/// order, and the same read on every node delivers them in the same order.
final class UpdateDelivery {
    /// The last `update_seq` delivered to subscribers.
    var delivered: Int64
    /// The highest `update_seq` known to be committed.
    var known: Int64
    /// Whether a read is under way.
    var reading = false

    init(delivered: Int64) {
        self.delivered = delivered
        self.known = delivered
    }
}

/// A state of a message: its id and the `update_seq` of its last change.
struct MessageVersion {
    let message: MessageID
    let updateSeq: Int64
}

/// Where live delivery of a chat starts or stands: its last `seq` and its last `update_seq`.
public struct LivePosition: Sendable, Equatable {
    public var lastSeq: Int64
    public var lastUpdate: Int64

    public init(lastSeq: Int64, lastUpdate: Int64) {
        self.lastSeq = lastSeq
        self.lastUpdate = lastUpdate
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
final class Subscription {
    let connection: ChatConnection
    /// The last `seq` this connection was given.
    var cursor: Int64
    /// Frames kept back while the connection catches up: messages with their `seq`, other
    /// events with none.
    var held: [(seq: Int64?, frame: ByteBuffer, version: MessageVersion?)]?
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
    /// skipping messages it already has. `version` marks a `message_updated` frame.
    func deliver(_ frame: ByteBuffer, seq: Int64?, version: MessageVersion? = nil, heldLimit: Int) {
        if held != nil {
            guard held?.count ?? 0 < heldLimit else {
                connection.outbox.close(.slowConsumer)
                return
            }
            held?.append((seq, frame, version))
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
        held?.append((seq, frame, nil))
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
