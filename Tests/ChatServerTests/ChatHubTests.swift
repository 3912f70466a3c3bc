import ChatConformance
import ChatProtocol
import ChatTestSupport
import Foundation
import Logging
import NIOCore
import Testing

@testable import ChatServer

/// The hub with fake connections (bare outboxes, no sockets) over a real SQLite store.
@Suite("Chat hub")
struct ChatHubTests {
    struct Fixture {
        let store: any ChatStore
        let hub: ChatHub
        let chat: ChatID
        let alice: UserID
        let bob: UserID

        /// Stores `count` messages from `sender` without publishing them.
        func store(_ count: Int, from sender: UserID, prefix: String) async throws -> [Message] {
            var messages: [Message] = []
            for index in 1...count {
                messages.append(
                    try await store.appendMessage(
                        NewMessage(chatID: chat, senderID: sender, clientID: "\(prefix)\(index)", text: "t")
                    ).message)
            }
            return messages
        }

        /// A connected fake device of `user`, following the chat from `lastSeq`.
        func connect(
            _ user: UserID, capacity: Int = 100, lastSeq: Int64 = 0, release: Bool = true
        ) throws -> ChatConnection {
            let connection = ChatConnection(
                userID: user, tokenID: "token-\(user)", narrowedTo: nil, outbox: .recording(frames: capacity))
            _ = try hub.connect(connection, chats: [(chat, .seq(lastSeq))])
            if release { hub.release(connection) }
            return connection
        }
    }

    /// Runs `test` with a hub (its gap filler running) over a store holding one chat of alice and bob.
    static func withHub(
        limits: ChatHub.Limits = .init(connectionsPerUser: 10, heldFrames: 100, gapGrace: .milliseconds(20)),
        clock: any Clock<Duration> = ContinuousClock(),
        _ test: @Sendable (Fixture) async throws -> Void
    ) async throws {
        try await TestDatabase.sqlite.withStore { store in
            let alice = try await store.createUser(NewUser(name: "alice", email: "a@example.com", passwordHash: "h")).id
            let bob = try await store.createUser(NewUser(name: "bob", email: "b@example.com", passwordHash: "h")).id
            let chat = try await store.createChat(name: "Pair", type: .private, creator: alice).id
            try await store.addMember(bob, to: chat)
            let hub = ChatHub(store: store, limits: limits, clock: clock, logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await hub.run() }
                try await test(Fixture(store: store, hub: hub, chat: chat, alice: alice, bob: bob))
                group.cancelAll()
            }
        }
    }

    /// The next `count` frames of an outbox, waiting at most `timeout`.
    static func frames(
        _ count: Int, from outbox: Outbox, timeout: Duration = Patience.wait
    ) async throws -> [ServerFrame] {
        try await withThrowingTaskGroup(of: [ServerFrame].self) { group in
            group.addTask {
                var frames: [ServerFrame] = []
                while frames.count < count {
                    guard case .frames(let batch) = await outbox.nextBatch() else { break }
                    frames += try batch.map(FrameEncoding.decode)
                }
                return frames
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw CancellationError()
            }
            defer { group.cancelAll() }
            return try await group.next() ?? []
        }
    }

    static func seqs(_ frames: [ServerFrame]) -> [Int64] {
        frames.compactMap {
            switch $0 {
            case .message(let message), .ack(_, let message, _): message.seq
            default: nil
            }
        }
    }

    @Test func publicationsArrivingOutOfOrderAreDeliveredInSeqOrder() async throws {
        try await Self.withHub { fixture in
            let messages = try await fixture.store(3, from: fixture.bob, prefix: "m")
            let connection = try fixture.connect(fixture.alice)
            for index in [2, 0, 1] { fixture.hub.publish(.init(messages[index], origin: nil)) }
            #expect(Self.seqs(try await Self.frames(3, from: connection.outbox)) == [1, 2, 3])
        }
    }

    /// The bound on how far the other members' copy may trail the sender's ack on one node:
    /// none. The publication that carries the ack queues the others' copies in the same call.
    @Test func aSendReachesTheOtherMembersWithItsAck() async throws {
        try await Self.withHub { fixture in
            let sender = try fixture.connect(fixture.alice)
            let other = try fixture.connect(fixture.bob)
            let mine = try await fixture.store(1, from: fixture.alice, prefix: "a")
            fixture.hub.sendStarted(sender, clientID: "a1", in: fixture.chat)
            #expect(fixture.hub.publish(.init(mine[0], origin: (sender.id, "a1"))), "the hub acks it")
            #expect(try await Self.frames(1, from: sender.outbox).map(\.kind) == [.ack])
            #expect(try await Self.frames(1, from: other.outbox).map(\.kind) == [.message])
        }
    }

    @Test func aMissingSeqIsReadFromTheStore() async throws {
        try await Self.withHub { fixture in
            let messages = try await fixture.store(3, from: fixture.bob, prefix: "m")
            let connection = try fixture.connect(fixture.alice)
            fixture.hub.publish(.init(messages[2], origin: nil))
            #expect(Self.seqs(try await Self.frames(3, from: connection.outbox)) == [1, 2, 3])
        }
    }

    @Test func messagesCommittedElsewhereAreReadAtOnceNotAfterTheGrace() async throws {
        let limits = ChatHub.Limits(connectionsPerUser: 10, heldFrames: 100, gapGrace: .seconds(600))
        try await Self.withHub(limits: limits) { fixture in
            let connection = try fixture.connect(fixture.alice)
            let messages = try await fixture.store(3, from: fixture.bob, prefix: "m")
            // A local gap waits out its (long) grace; another node's commit is read at once.
            fixture.hub.publish(.init(messages[1], origin: nil))
            fixture.hub.committed(in: fixture.chat, upTo: 3)
            #expect(Self.seqs(try await Self.frames(3, from: connection.outbox)) == [1, 2, 3])
        }
    }

    /// The hub's clock moves only when the test says: each gap's grace ends on request.
    @Test func aGapThatClosedDuringItsGraceLeavesLaterGapsFilled() async throws {
        let clock = ManualClock()
        let grace = Duration.seconds(1)
        try await Self.withHub(limits: .init(connectionsPerUser: 10, heldFrames: 100, gapGrace: grace), clock: clock) {
            fixture in
            let connection = try fixture.connect(fixture.alice)
            let messages = try await fixture.store(4, from: fixture.bob, prefix: "m")
            fixture.hub.publish(.init(messages[1], origin: nil))
            fixture.hub.publish(.init(messages[0], origin: nil))
            #expect(Self.seqs(try await Self.frames(2, from: connection.outbox)) == [1, 2])
            // The fill the first gap asked for waits out its grace, then finds the gap closed.
            await clock.sleepers(atLeast: 1)
            clock.advance(by: grace)
            // A new gap: that fill, if it has not finished yet, or a new one reads it.
            fixture.hub.publish(.init(messages[3], origin: nil))
            let frames = try await clock.advancing(by: grace) { try await Self.frames(2, from: connection.outbox) }
            #expect(Self.seqs(frames) == [3, 4])
        }
    }

    @Test func aFillUnsubscribesUsersNoLongerMembers() async throws {
        try await Self.withHub { fixture in
            let alice = try fixture.connect(fixture.alice)
            let bob = try fixture.connect(fixture.bob)
            // Removed, and a message stored, by another node: this hub hears of the message first.
            try await fixture.store.removeMember(fixture.bob, from: fixture.chat)
            _ = try await fixture.store(1, from: fixture.alice, prefix: "after")
            fixture.hub.committed(in: fixture.chat, upTo: 1)
            #expect(Self.seqs(try await Self.frames(1, from: alice.outbox)) == [1])
            #expect(
                try await Self.frames(1, from: bob.outbox) == [
                    .memberRemoved(chatID: fixture.chat, userID: fixture.bob)
                ])
            #expect(!fixture.hub.isSubscribed(bob, to: fixture.chat))
        }
    }

    @Test func aGapFillStillAcksASendBeingStored() async throws {
        try await Self.withHub { fixture in
            let sender = try fixture.connect(fixture.alice)
            let other = try fixture.connect(fixture.bob)
            let first = try await fixture.store(1, from: fixture.bob, prefix: "b")
            fixture.hub.sendStarted(sender, clientID: "a1", in: fixture.chat)
            let mine = try await fixture.store(1, from: fixture.alice, prefix: "a")
            let third = try await fixture.store(1, from: fixture.bob, prefix: "c")
            fixture.hub.publish(.init(first[0], origin: nil))
            fixture.hub.publish(.init(third[0], origin: nil))
            // Seq 2's own publication is late: the gap fill reads it; the others get it, and its
            // sender waits for the publication to learn what its ack says.
            #expect(Self.seqs(try await Self.frames(3, from: other.outbox)) == [1, 2, 3])
            let beforeAck = try await Self.frames(1, from: sender.outbox)
            #expect(beforeAck.map(\.kind) == [.message] && Self.seqs(beforeAck) == [1])
            #expect(
                fixture.hub.publish(.init(mine[0], origin: (sender.id, "a1"))), "the hub delivers the late ack")
            let senderFrames = try await Self.frames(2, from: sender.outbox)
            #expect(senderFrames.map(\.kind) == [.ack, .message] && Self.seqs(senderFrames) == [2, 3])
        }
    }

    @Test func aSendThatFindsItsMessageStoredIsAckedAsADuplicateInOrder() async throws {
        try await Self.withHub { fixture in
            let sender = try fixture.connect(fixture.alice)
            // Stored by an earlier attempt (or another node) that nobody heard of.
            let earlier = try await fixture.store(1, from: fixture.alice, prefix: "retried")
            fixture.hub.sendStarted(sender, clientID: "retried1", in: fixture.chat)
            fixture.hub.committed(in: fixture.chat, upTo: 1)
            let later = try await fixture.store(1, from: fixture.bob, prefix: "b")
            fixture.hub.publish(.init(later[0], origin: nil))
            #expect(fixture.hub.publish(.init(earlier[0], origin: (sender.id, "retried1"), duplicate: true)))
            let frames = try await Self.frames(2, from: sender.outbox)
            guard case .ack(_, let message, let duplicate) = frames.first else {
                Issue.record("expected the ack first, got \(frames)")
                return
            }
            #expect(message.seq == 1 && duplicate, "the retry learns it was a duplicate")
            #expect(Self.seqs(frames) == [1, 2])
        }
    }

    @Test func aSendThatFailsAfterAGapFillReadItsMessageGetsTheMessage() async throws {
        try await Self.withHub { fixture in
            let sender = try fixture.connect(fixture.alice)
            fixture.hub.sendStarted(sender, clientID: "m1", in: fixture.chat)
            _ = try await fixture.store(1, from: fixture.alice, prefix: "m")
            fixture.hub.committed(in: fixture.chat, upTo: 1)
            // The store call failed after all (its answer was lost): no publication comes.
            fixture.hub.sendEnded(sender, clientID: "m1", in: fixture.chat)
            let frames = try await Self.frames(1, from: sender.outbox)
            #expect(frames.map(\.kind) == [.message] && Self.seqs(frames) == [1])
        }
    }

    @Test func slowConsumersAreClosedWithoutSlowingOthers() async throws {
        try await Self.withHub { fixture in
            let messages = try await fixture.store(10, from: fixture.bob, prefix: "m")
            let slow = try fixture.connect(fixture.alice, capacity: 4)
            let fast = try fixture.connect(fixture.alice)
            // Its socket is full: what it is sent waits in its outbox. (With a socket that
            // drains, the outcome would depend on whether the event loop drains it between two
            // publications.)
            try await slow.outbox.recorder.setWritable(false, outbox: slow.outbox)
            for message in messages { fixture.hub.publish(.init(message, origin: nil)) }
            guard case .closed(let reason) = await slow.outbox.nextBatch() else {
                Issue.record("the slow consumer is still open")
                return
            }
            #expect(reason == .slowConsumer)
            #expect(Self.seqs(try await Self.frames(10, from: fast.outbox)) == Array(1...10))
        }
    }

    @Test func framesHeldDuringCatchUpAreBounded() async throws {
        try await Self.withHub(limits: .init(connectionsPerUser: 10, heldFrames: 3)) { fixture in
            let messages = try await fixture.store(4, from: fixture.bob, prefix: "m")
            let connection = try fixture.connect(fixture.alice, release: false)
            for message in messages { fixture.hub.publish(.init(message, origin: nil)) }
            guard case .closed(.slowConsumer) = await connection.outbox.nextBatch() else {
                Issue.record("holding more than the limit did not close the connection")
                return
            }
        }
    }

    @Test func aCatchUpIsFollowedByWhatWasHeldWithoutRepeats() async throws {
        try await Self.withHub { fixture in
            let messages = try await fixture.store(4, from: fixture.bob, prefix: "m")
            let connection = try fixture.connect(fixture.alice)
            for message in messages.prefix(2) { fixture.hub.publish(.init(message, origin: nil)) }
            #expect(fixture.hub.beginCatchUp(connection, chat: fixture.chat))
            for message in messages.suffix(2) { fixture.hub.publish(.init(message, origin: nil)) }
            let catchUp = messages.prefix(3).map {
                (seq: Int64?.some($0.seq), frame: FrameEncoding.encode(.message(MessagePayload($0, isRead: false))))
            }
            fixture.hub.endCatchUp(connection, chat: fixture.chat, afterSeq: 0, frames: catchUp)
            // Live 1, 2; then the requested catch-up 1, 2, 3; then the held 4 (3 was held too, and skipped).
            #expect(Self.seqs(try await Self.frames(6, from: connection.outbox)) == [1, 2, 1, 2, 3, 4])
        }
    }

    @Test func membershipChangesTakeEffectAtOnce() async throws {
        try await Self.withHub { fixture in
            let carol = try await fixture.store.createUser(
                NewUser(name: "carol", email: "c@example.com", passwordHash: "h"))
            let carolConnection = ChatConnection(
                userID: carol.id, tokenID: "c", narrowedTo: nil, outbox: .recording())
            _ = try fixture.hub.connect(carolConnection, chats: [])
            _ = try await fixture.store(2, from: fixture.bob, prefix: "m")
            let bobConnection = try fixture.connect(fixture.bob, lastSeq: 2)
            let chat = try #require(try await fixture.store.chat(fixture.chat, member: fixture.bob))
            fixture.hub.memberAdded(ChatDetails(chat: chat, members: []), user: carol.id)
            guard
                case .memberAdded(_, let userID, let added?) = try await Self.frames(1, from: carolConnection.outbox)
                    .first
            else {
                Issue.record("carol got no member_added")
                return
            }
            #expect(userID == carol.id && added.lastSeq == 2)
            #expect(fixture.hub.isSubscribed(carolConnection, to: fixture.chat))

            fixture.hub.memberRemoved(chat: fixture.chat, user: carol.id)
            #expect(!fixture.hub.isSubscribed(carolConnection, to: fixture.chat))
            let third = try await fixture.store(1, from: fixture.bob, prefix: "x")
            fixture.hub.publish(.init(third[0], origin: nil))
            carolConnection.outbox.offer(FrameEncoding.encode(.presence(userID: 0, online: false)))
            let afterRemoval = try await Self.frames(2, from: carolConnection.outbox)
            #expect(afterRemoval.map(\.kind) == [.memberRemoved, .presence], "nothing after the removal")
            let bobFrames = try await Self.frames(3, from: bobConnection.outbox)
            #expect(bobFrames.map(\.kind) == [.memberAdded, .memberRemoved, .message] && Self.seqs(bobFrames) == [3])
        }
    }

    /// Another node's notice of an addition may arrive after the added user's new connection
    /// listed the chat in `ready`: that connection hears nothing more of it.
    @Test func aLateNoticeOfAnAdditionLeavesAConnectionThatFollowsTheChatAlone() async throws {
        try await Self.withHub { fixture in
            _ = try await fixture.store(2, from: fixture.bob, prefix: "m")
            let bobConnection = try fixture.connect(fixture.bob, lastSeq: 2)
            let chat = try #require(try await fixture.store.chat(fixture.chat, member: fixture.bob))
            fixture.hub.memberAdded(ChatDetails(chat: chat, members: []), user: fixture.bob)
            let third = try await fixture.store(1, from: fixture.bob, prefix: "x")
            fixture.hub.publish(.init(third[0], origin: nil))
            let frames = try await Self.frames(1, from: bobConnection.outbox)
            #expect(frames.map(\.kind) == [.message] && Self.seqs(frames) == [3], "no member_added, no repeat")
        }
    }

    @Test func connectionsPerUserAreLimited() async throws {
        try await Self.withHub(limits: .init(connectionsPerUser: 2, heldFrames: 10)) { fixture in
            _ = try fixture.connect(fixture.alice)
            let second = try fixture.connect(fixture.alice)
            #expect(throws: ChatHub.ConnectError.tooManyConnections(limit: 2)) {
                _ = try fixture.connect(fixture.alice)
            }
            #expect(!fixture.hub.disconnect(second), "alice still has a connection")
            _ = try fixture.connect(fixture.alice)
        }
    }

    @Test func revokingASessionClosesOnlyItsConnections() async throws {
        try await Self.withHub { fixture in
            let revoked = try fixture.connect(fixture.alice)
            let kept = try fixture.connect(fixture.bob)
            fixture.hub.sessionRevoked(tokenID: "token-\(fixture.alice)")
            guard case .closed(.closing(let code, _)) = await revoked.outbox.nextBatch() else {
                Issue.record("the revoked session's connection stayed open")
                return
            }
            #expect(code == .sessionEnded)
            #expect(!kept.outbox.isClosed)
        }
    }
}
