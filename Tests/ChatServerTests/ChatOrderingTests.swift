import ChatProtocol
import Foundation
import NIOCore
import Testing

@testable import ChatServer

/// The per-chat ordering state machine on its own: no store, no network, no hub. Publications
/// go in by hand, and each connection's outbox shows what it would have been sent.
@Suite("Chat ordering")
struct ChatOrderingTests {
    static let chat = ChatID(1)
    static let (alice, bob) = (UserID(1), UserID(2))

    static func connection(_ user: UserID) -> ChatConnection {
        ChatConnection(userID: user, tokenID: "t\(user)", narrowedTo: nil, outbox: .recording())
    }

    static func message(_ seq: Int64, from sender: UserID, clientID: String? = nil) -> Message {
        Message(
            id: MessageID(seq), chatID: chat, seq: seq, senderID: sender, clientID: clientID ?? "c\(seq)",
            text: "message \(seq)", createdAt: Date(timeIntervalSince1970: 0))
    }

    /// Everything `connection` was given so far: a marker is offered after it, and the
    /// frames up to the marker are what came before.
    static func sent(to connection: ChatConnection) async -> [ServerFrame] {
        let marker = FrameEncoding.encode(.typing(chatID: ChatID(-1), userID: UserID(-1)))
        connection.outbox.offer(marker)
        var sent: [ByteBuffer] = []
        while sent.last != marker {
            guard case .frames(let batch) = await connection.outbox.nextBatch() else { return [] }
            sent += batch
        }
        return sent.dropLast().compactMap {
            try? FrameEncoding.decode($0)
        }
    }

    /// `message 3` as a `message` frame is `m3`, as an `ack` `a3`; `resumed` at 4 is `r4`.
    static func summary(_ frames: [ServerFrame]) -> [String] {
        frames.map {
            switch $0 {
            case .message(let message): "m\(message.seq)"
            case .ack(_, let message, _): "a\(message.seq)"
            case .resumed(_, let lastSeq): "r\(lastSeq)"
            case .messageUpdated(let message): "u\(message.seq)@\(message.updateSeq)"
            default: "\($0.kind)"
            }
        }
    }

    /// An updated message as read from the store: message `seq`, changed under `updateSeq`.
    static func updated(_ seq: Int64, at updateSeq: Int64) -> (message: Message, frame: ByteBuffer) {
        let message = Message(
            id: MessageID(seq), chatID: chat, seq: seq, senderID: alice, clientID: nil, text: "edited",
            createdAt: Date(timeIntervalSince1970: 0), updateSeq: updateSeq)
        return (message, FrameEncoding.encode(.messageUpdated(MessagePayload(message, isRead: false))))
    }

    @Test func updatesAreReadOneReadAtATimeAndDeliveredOnce() async {
        var ordering = ChatOrdering()
        let reader = Self.connection(Self.bob)
        _ = ordering.subscribe(reader, to: Self.chat, at: LivePosition(lastSeq: 3, lastUpdate: 1), held: false)
        #expect(ordering.messagesUpdated(in: Self.chat, upTo: 3), "a read starts")
        #expect(!ordering.messagesUpdated(in: Self.chat, upTo: 4), "one read at a time")
        #expect(ordering.nextUpdateRead(in: Self.chat) == 1, "the read starts after the last delivered")
        #expect(
            ordering.deliverUpdates([Self.updated(1, at: 1), Self.updated(2, at: 3)], in: Self.chat, heldLimit: 10)
                == nil)
        #expect(Self.summary(await Self.sent(to: reader)) == ["u2@3"], "update 1 was delivered before")
        #expect(ordering.nextUpdateRead(in: Self.chat) == 3, "4 is known and not delivered: read on")
        #expect(ordering.deliverUpdates([Self.updated(1, at: 4)], in: Self.chat, heldLimit: 10) == nil)
        #expect(ordering.nextUpdateRead(in: Self.chat) == nil, "all delivered: the read ends")
        #expect(Self.summary(await Self.sent(to: reader)) == ["u1@4"])
        #expect(!ordering.messagesUpdated(in: Self.chat, upTo: 4), "nothing new")
        #expect(!ordering.messagesUpdated(in: ChatID(99), upTo: 1), "nobody follows that chat")
    }

    @Test func anUpdateWaitsForItsMessage() async {
        var ordering = ChatOrdering()
        let reader = Self.connection(Self.bob)
        _ = ordering.subscribe(reader, to: Self.chat, at: .seq(1), held: false)
        #expect(ordering.messagesUpdated(in: Self.chat, upTo: 2))
        #expect(ordering.nextUpdateRead(in: Self.chat) == 0)
        // Message 2 is still on its way to this node when its edit is read.
        #expect(
            ordering.deliverUpdates([Self.updated(1, at: 1), Self.updated(2, at: 2)], in: Self.chat, heldLimit: 10)
                == 2, "it stops at message 2, which the hub then asks for")
        #expect(Self.summary(await Self.sent(to: reader)) == ["u1@1"], "the update of 2 waits")
        _ = ordering.publish(.init(Self.message(2, from: Self.alice), origin: nil), heldLimit: 10)
        #expect(ordering.nextUpdateRead(in: Self.chat) == 1, "read again from where it stopped")
        #expect(ordering.deliverUpdates([Self.updated(2, at: 2)], in: Self.chat, heldLimit: 10) == nil)
        #expect(Self.summary(await Self.sent(to: reader)) == ["m2", "u2@2"], "the message, then its update")
    }

    @Test func aCatchUpDropsHeldUpdatesNoNewerThanWhatItBrought() async {
        var ordering = ChatOrdering()
        let device = Self.connection(Self.bob)
        _ = ordering.subscribe(device, to: Self.chat, at: .seq(2), held: false)
        #expect(ordering.beginHold(device.id, chat: Self.chat))
        #expect(ordering.messagesUpdated(in: Self.chat, upTo: 2))
        _ = ordering.nextUpdateRead(in: Self.chat)
        _ = ordering.deliverUpdates([Self.updated(1, at: 1), Self.updated(2, at: 2)], in: Self.chat, heldLimit: 10)
        // The catch-up read message 1 after a later edit (3), and message 2 as of update 2.
        let frames = [Self.updated(1, at: 3), Self.updated(2, at: 2)].map { (seq: Int64?.none, frame: $0.frame) }
        ordering.endHold(
            device, chat: Self.chat,
            catchUp: (afterSeq: 2, frames: frames, versions: [MessageID(1): 3, MessageID(2): 2]))
        #expect(Self.summary(await Self.sent(to: device)) == ["u1@3", "u2@2", "r2"], "never an older state after")
    }

    @Test func aPublicationWaitsForTheSeqBeforeIt() async {
        var ordering = ChatOrdering()
        let reader = Self.connection(Self.bob)
        #expect(ordering.subscribe(reader, to: Self.chat, at: .seq(0), held: false) == .seq(0))
        let early = ordering.publish(.init(Self.message(2, from: Self.alice), origin: nil), heldLimit: 10)
        #expect(early.deliveries == 0 && early.needsGapFill, "held back, and a gap fill asked for once")
        #expect(Self.summary(await Self.sent(to: reader)) == [])
        let late = ordering.publish(.init(Self.message(1, from: Self.alice), origin: nil), heldLimit: 10)
        #expect(late.deliveries == 2 && !late.needsGapFill)
        #expect(Self.summary(await Self.sent(to: reader)) == ["m1", "m2"])
        let again = ordering.publish(.init(Self.message(2, from: Self.alice), origin: nil), heldLimit: 10)
        #expect(again.deliveries == 0, "a seq delivered already is not delivered again")
    }

    @Test func theSenderGetsItsAckInTheMessagesPlace() async {
        var ordering = ChatOrdering()
        let (sender, reader) = (Self.connection(Self.alice), Self.connection(Self.bob))
        _ = ordering.subscribe(sender, to: Self.chat, at: .seq(0), held: false)
        _ = ordering.subscribe(reader, to: Self.chat, at: .seq(0), held: false)
        let key = SendKey(sender: Self.alice, clientID: "mine")
        ordering.sendStarted(key, by: sender.id, in: Self.chat)
        let result = ordering.publish(
            .init(Self.message(1, from: Self.alice, clientID: "mine"), origin: (sender.id, "mine")), heldLimit: 10)
        #expect(result.originAcked)
        #expect(Self.summary(await Self.sent(to: sender)) == ["a1"])
        #expect(Self.summary(await Self.sent(to: reader)) == ["m1"])
    }

    /// A gap fill read the sender's own message before its send finished: the sender's
    /// connection gets nothing of the chat until the ack can take the message's place.
    @Test func aSendAGapFillReadFirstIsStillAckedInItsPlace() async {
        var ordering = ChatOrdering()
        let (sender, reader) = (Self.connection(Self.alice), Self.connection(Self.bob))
        _ = ordering.subscribe(sender, to: Self.chat, at: .seq(0), held: false)
        _ = ordering.subscribe(reader, to: Self.chat, at: .seq(0), held: false)
        ordering.sendStarted(SendKey(sender: Self.alice, clientID: "mine"), by: sender.id, in: Self.chat)
        _ = ordering.publish(.init(Self.message(1, from: Self.alice, clientID: "mine"), origin: nil), heldLimit: 10)
        _ = ordering.publish(.init(Self.message(2, from: Self.bob), origin: nil), heldLimit: 10)
        #expect(Self.summary(await Self.sent(to: reader)) == ["m1", "m2"])
        #expect(Self.summary(await Self.sent(to: sender)) == [], "held until the ack")
        let result = ordering.publish(
            .init(Self.message(1, from: Self.alice, clientID: "mine"), origin: (sender.id, "mine")), heldLimit: 10)
        #expect(result.originAcked)
        #expect(Self.summary(await Self.sent(to: sender)) == ["a1", "m2"])
    }

    /// A `resume`: live frames are held while the store is read, then the catch-up comes
    /// first, what was held after it without repeats, then `resumed`.
    @Test func aCatchUpHoldsLiveFramesAndSkipsWhatItBrought() async {
        var ordering = ChatOrdering()
        let device = Self.connection(Self.bob)
        _ = ordering.subscribe(device, to: Self.chat, at: .seq(3), held: false)
        #expect(ordering.beginHold(device.id, chat: Self.chat))
        _ = ordering.publish(.init(Self.message(4, from: Self.alice), origin: nil), heldLimit: 10)
        #expect(Self.summary(await Self.sent(to: device)) == [])
        let caughtUp = (2...4).map {
            (
                seq: Int64?.some(Int64($0)),
                frame: FrameEncoding.encode(.message(MessagePayload(Self.message($0, from: Self.alice), isRead: false)))
            )
        }
        ordering.endHold(device, chat: Self.chat, catchUp: (afterSeq: 1, frames: caughtUp, versions: [:]))
        #expect(Self.summary(await Self.sent(to: device)) == ["m2", "m3", "m4", "r4"])
        _ = ordering.publish(.init(Self.message(5, from: Self.alice), origin: nil), heldLimit: 10)
        #expect(Self.summary(await Self.sent(to: device)) == ["m5"], "live again")
    }

    @Test func aHoldThatOverflowsClosesTheConnectionAsASlowConsumer() async {
        var ordering = ChatOrdering()
        let device = Self.connection(Self.bob)
        _ = ordering.subscribe(device, to: Self.chat, at: .seq(0), held: true)
        _ = ordering.publish(.init(Self.message(1, from: Self.alice), origin: nil), heldLimit: 1)
        _ = ordering.publish(.init(Self.message(2, from: Self.alice), origin: nil), heldLimit: 1)
        guard case .closed(let reason) = await device.outbox.nextBatch() else {
            Issue.record("the outbox is still open")
            return
        }
        #expect(reason == .slowConsumer)
    }

    /// Messages committed elsewhere: one urgent gap fill at a time, and another when the
    /// first ends short of what is known to be committed.
    @Test func messagesCommittedElsewhereAreReadOneFillAtATime() {
        var ordering = ChatOrdering()
        _ = ordering.subscribe(Self.connection(Self.bob), to: Self.chat, at: .seq(0), held: false)
        #expect(ordering.committed(in: Self.chat, upTo: 3))
        #expect(!ordering.committed(in: Self.chat, upTo: 5), "one urgent fill is under way")
        #expect(ordering.gap(in: Self.chat)! == (after: 0, count: 5))
        _ = ordering.publish(.init(Self.message(1, from: Self.alice), origin: nil), heldLimit: 10)
        let next = ordering.finishGapFill(GapFill(chat: Self.chat, urgent: true))
        #expect(next?.urgent == true && ordering.gap(in: Self.chat)! == (after: 1, count: 4))
        for seq in 2...5 {
            _ = ordering.publish(.init(Self.message(Int64(seq), from: Self.alice), origin: nil), heldLimit: 10)
        }
        #expect(ordering.finishGapFill(next!) == nil && ordering.gap(in: Self.chat) == nil, "caught up")
    }
}

extension LivePosition {
    /// A chat with messages up to `lastSeq` and no update.
    static func seq(_ lastSeq: Int64) -> LivePosition { LivePosition(lastSeq: lastSeq, lastUpdate: 0) }
}
