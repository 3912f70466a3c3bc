import ChatProtocol
import ChatServer
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOWebSocket
import Synchronization
import WSClient

/// What a real-time check runs against: the REST API of a live server, and the ports of the
/// nodes serving it for opening real WebSocket connections.
public final class RealtimeFixture: Sendable {
    public let api: APITestClient
    /// One port per node; REST calls go to the first.
    public let ports: [Int]
    private let connections = Mutex(0)

    public init(api: APITestClient, ports: [Int]) {
        self.api = api
        self.ports = ports
    }

    /// Opens a WebSocket connection as `user` and waits for `ready`: on `node` when given,
    /// otherwise on the nodes in turn.
    public func connect(_ user: TestUser, query: String = "", node: Int? = nil) async throws -> ChatWebSocketClient {
        let index =
            node
            ?? connections.withLock { count in
                defer { count += 1 }
                return count % ports.count
            }
        return try await ChatWebSocketClient.connect(port: ports[index], token: user.token, query: query)
    }
}

/// A named real-time scenario with real WebSocket clients.
public struct RealtimeCheck: Sendable, CustomStringConvertible {
    public let description: String
    public let run: @Sendable (RealtimeFixture) async throws -> Void
}

/// The behaviour the WebSocket layer must have on every store: the unit tests run these
/// checks on SQLite, the integration tests on PostgreSQL with one node and with two (where
/// consecutive connections go to different nodes).
public enum RealtimeContract {
    public static let checks: [RealtimeCheck] = [
        RealtimeCheck(description: "ready lists chats with positions, markers and presence", run: ready),
        RealtimeCheck(description: "concurrent senders: every connection sees seq order without gaps", run: ordering),
        RealtimeCheck(description: "a retried client id is acknowledged as a duplicate, broadcast once", run: retries),
        RealtimeCheck(description: "a client id raced from two devices is stored once", run: racedDevices),
        RealtimeCheck(
            description: "a retried send whose first answer was lost reaches every member", run: lostAnswers),
        RealtimeCheck(description: "read markers move forward and reach every device", run: readMarkers),
        RealtimeCheck(description: "presence follows a user's first and last connection", run: presence),
        RealtimeCheck(description: "membership changes take effect on open connections", run: membership),
        RealtimeCheck(
            description: "a creator who leaves hands the chat to the earliest member; every device hears it",
            run: leaving),
        RealtimeCheck(
            description: "resume streams what was missed, ends with resumed, then live continues", run: resume),
        RealtimeCheck(
            description: "edits and deletions reach every device, the actor's too, in the order made",
            run: editsReachEveryDevice),
        RealtimeCheck(
            description: "edits raced from two devices converge on every connection", run: racedEdits),
        RealtimeCheck(
            description: "resume with after_update brings the edits and deletions made while away",
            run: resumeAfterUpdate),
        RealtimeCheck(description: "a reply names a message of its chat; any other is refused", run: replies),
        RealtimeCheck(description: "admin sync re-follows membership changed behind the hub", run: adminSync),
        RealtimeCheck(description: "logging out closes the session's sockets with 1008", run: logout),
    ]

    static func ready(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        try await api.storeMessages(3, in: chat.id, from: alice.id)
        _ = try await api.store.advanceReadMarker(of: bob.id, in: chat.id, to: 2)
        // One node: another node learns of bob's presence a moment later.
        let bobSocket = try await fixture.connect(bob, node: 0)
        let aliceSocket = try await fixture.connect(alice, node: 0)
        let ready = aliceSocket.ready
        try await require(ready.user == UserPayload(id: alice.id, name: "alice"), "ready names the user")
        try await require(ready.chats.count == 1 && ready.chats[0].id == chat.id, "ready lists the chat")
        try await require(ready.chats[0].lastSeq == 3 && ready.chats[0].chatType == .private, "with its position")
        try await require(
            ready.chats[0].members == [
                ReadyMember(userID: alice.id, name: "alice", readSeq: 3, online: true),
                ReadyMember(userID: bob.id, name: "bob", readSeq: 2, online: true),
            ], "with every member's marker and presence")
        try await require(ready.resumeLimit == 1000, "and the resume limit")
        let generation = try await api.store.databaseGeneration()
        try await require(ready.generation == generation, "and the database's generation")
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func ordering(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let users = try await [api.user("u0"), api.user("u1"), api.user("u2"), api.user("u3")]
        let chat = try await api.createChat("Busy", as: users[0])
        for user in users.dropFirst() { _ = try await api.addUser(user.id, to: chat.id, as: users[0]) }
        let sockets = try await users.asyncMap { try await fixture.connect($0) } + [fixture.connect(users[0])]
        let senders = Array(sockets.prefix(3))
        let perSender = 20
        // Every sender pipelines all of its messages at once, concurrently with the others.
        for (index, socket) in senders.enumerated() {
            for number in 0..<perSender {
                socket.send(.send(chatID: chat.id, clientID: "s\(index)-\(number)", text: "message \(number)"))
            }
        }
        let total = senders.count * perSender
        try await withThrowingTaskGroup(of: [Int64].self) { group in
            for socket in sockets {
                group.addTask { try await deliveries(total, in: chat.id, on: socket).map(\.seq) }
            }
            for try await seqs in group {
                try await require(
                    seqs == Array(1...Int64(total)), "each connection sees 1...\(total) in order: \(seqs)")
            }
        }
        for socket in sockets { await socket.close() }
    }

    static func retries(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let aliceSocket = try await fixture.connect(alice)
        let bobSocket = try await fixture.connect(bob)
        aliceSocket.send(.send(chatID: chat.id, clientID: "c1", text: "first"))
        let first = try await ack(on: aliceSocket)
        aliceSocket.send(.send(chatID: chat.id, clientID: "c1", text: "retried with other text"))
        let retry = try await ack(on: aliceSocket)
        try await require(!first.duplicate && retry.duplicate, "the retry is marked duplicate")
        try await require(retry.message == first.message && retry.message.text == "first", "with the original message")
        aliceSocket.send(.send(chatID: chat.id, clientID: "c2", text: "second"))
        try await require(try await ack(on: aliceSocket).message.seq == 2, "the retry consumed no seq")
        let received = try await deliveries(2, in: chat.id, on: bobSocket)
        try await require(received.map(\.clientID) == ["c1", "c2"], "the other member got the message once")
        await aliceSocket.close()
        await bobSocket.close()
    }

    /// The first attempt was stored, but the database failed before the server learned it
    /// (so nobody was told): the retry must bring the message to the other members too.
    static func lostAnswers(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let aliceSocket = try await fixture.connect(alice)
        let bobSocket = try await fixture.connect(bob)
        _ = try await api.store.appendMessages([
            NewMessage(chatID: chat.id, senderID: alice.id, clientID: "lost", text: "stored unannounced")
        ])
        aliceSocket.send(.send(chatID: chat.id, clientID: "lost", text: "stored unannounced"))
        let retry = try await ack(on: aliceSocket)
        try await require(retry.duplicate && retry.message.seq == 1, "the retry is acknowledged as the stored message")
        // No later message comes to reveal a gap: the retry itself must deliver it.
        let first = try await deliveries(1, in: chat.id, on: bobSocket)
        try await require(first.map(\.clientID) == ["lost"], "the other member got it")
        aliceSocket.send(.send(chatID: chat.id, clientID: "lost", text: "stored unannounced"))
        aliceSocket.send(.send(chatID: chat.id, clientID: "next", text: "next"))
        try await require(try await ack(on: aliceSocket).duplicate, "a second retry is a duplicate too")
        try await require(try await ack(on: aliceSocket).message.seq == 2, "then the next one")
        let second = try await deliveries(1, in: chat.id, on: bobSocket)
        try await require(second.map(\.clientID) == ["next"], "and nothing is delivered twice")
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func racedDevices(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let phone = try await fixture.connect(alice)
        let laptop = try await fixture.connect(alice)
        let bobSocket = try await fixture.connect(bob)
        for round in 0..<5 {
            phone.send(.send(chatID: chat.id, clientID: "raced-\(round)", text: "from the phone"))
            laptop.send(.send(chatID: chat.id, clientID: "raced-\(round)", text: "from the laptop"))
            let (fromPhone, fromLaptop) = (try await ack(on: phone), try await ack(on: laptop))
            try await require(fromPhone.message == fromLaptop.message, "both devices get the same message")
            try await require(fromPhone.duplicate != fromLaptop.duplicate, "exactly one of them stored it")
            try await require(fromPhone.message.seq == Int64(round + 1), "one seq per round")
        }
        let received = try await deliveries(5, in: chat.id, on: bobSocket)
        try await require(received.map(\.seq) == [1, 2, 3, 4, 5], "broadcast once per round")
        for socket in [phone, laptop, bobSocket] { await socket.close() }
    }

    static func readMarkers(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        try await api.storeMessages(3, in: chat.id, from: alice.id)
        let aliceSocket = try await fixture.connect(alice)
        let bobPhone = try await fixture.connect(bob)
        let bobLaptop = try await fixture.connect(bob)
        bobPhone.send(.read(chatID: chat.id, seq: 2))
        let expected = ServerFrame.read(chatID: chat.id, userID: bob.id, seq: 2)
        try await require(try await aliceSocket.next(.read) == expected, "the sender learns of the read")
        try await require(try await bobLaptop.next(.read) == expected, "the reader's other device too")
        bobPhone.send(.read(chatID: chat.id, seq: 1))
        bobPhone.send(.read(chatID: chat.id, seq: 99))
        let clamped = ServerFrame.read(chatID: chat.id, userID: bob.id, seq: 3)
        try await require(try await aliceSocket.next(.read) == clamped, "never back, never past the last seq")
        let history = try await api.send(.get, "/history/\(chat.id)", as: alice)
            .decode([MessagePayload].self, expecting: .ok)
        try await require(history.map(\.isRead) == [true, true, true], "history shows the messages read")
        for socket in [aliceSocket, bobPhone, bobLaptop] { await socket.close() }
    }

    static func presence(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, _) = try await pair(api)
        let aliceSocket = try await fixture.connect(alice)
        let bobPhone = try await fixture.connect(bob)
        try await require(
            try await aliceSocket.next(.presence) == .presence(userID: bob.id, online: true), "bob came online")
        let bobLaptop = try await fixture.connect(bob)
        await bobPhone.close()
        await bobLaptop.close()
        // Had the second device or the first close announced anything, it would come first.
        let last = try await aliceSocket.next(.presence)
        try await require(
            last == .presence(userID: bob.id, online: false),
            "bob went offline when his last connection closed: \(last)")
        await aliceSocket.close()
    }

    static func membership(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, carol) = (try await api.user("alice"), try await api.user("bob"), try await api.user("carol"))
        let chat = try await api.createChat("Team", as: alice)
        _ = try await api.addUser(bob.id, to: chat.id, as: alice)
        let aliceSocket = try await fixture.connect(alice)
        let bobSocket = try await fixture.connect(bob)
        let carolSocket = try await fixture.connect(carol)
        aliceSocket.send(.send(chatID: chat.id, clientID: "before", text: "before carol"))
        _ = try await ack(on: aliceSocket)

        _ = try await api.addUser(carol.id, to: chat.id, as: alice)
        guard case .memberAdded(let chatID, let userID, let added?) = try await carolSocket.next(.memberAdded) else {
            throw ContractFailure(description: "carol got no member_added with the chat")
        }
        try await require(chatID == chat.id && userID == carol.id && added.lastSeq == 1, "carol follows from seq 1")
        try await require(
            try await bobSocket.next(.memberAdded) == .memberAdded(chatID: chat.id, userID: carol.id, chat: nil),
            "members learn of carol")
        aliceSocket.send(.send(chatID: chat.id, clientID: "after", text: "welcome carol"))
        try await require(try await deliveries(1, in: chat.id, on: carolSocket).map(\.seq) == [2], "carol receives")

        _ = try await api.removeUser(bob.id, from: chat.id, as: alice)
        let removed = ServerFrame.memberRemoved(chatID: chat.id, userID: bob.id)
        try await require(try await carolSocket.next(.memberRemoved) == removed, "members learn of bob leaving")
        aliceSocket.send(.send(chatID: chat.id, clientID: "gone", text: "bob cannot see this"))
        try await require(try await deliveries(1, in: chat.id, on: carolSocket).map(\.seq) == [3], "the chat goes on")
        bobSocket.send(.send(chatID: chat.id, clientID: "late", text: "hello?"))
        let afterRemoval = try await frames(on: bobSocket, until: .error)
        try await require(
            afterRemoval.compactMap(\.message).allSatisfy { $0.seq <= 2 }, "bob receives nothing after his removal")
        try await require(afterRemoval.contains(removed), "bob was told he was removed")
        try await require(
            afterRemoval.last
                == .error(
                    code: ErrorCode.notAMember.rawValue, message: ChatError.notAMember.message, ref: "late",
                    chatID: chat.id),
            "bob's send is refused, naming the chat")
        for socket in [aliceSocket, bobSocket, carolSocket] { await socket.close() }
    }

    static func leaving(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, carol) = (try await api.user("alice"), try await api.user("bob"), try await api.user("carol"))
        let chat = try await api.createChat("Team", as: alice)
        _ = try await api.addUser(bob.id, to: chat.id, as: alice)
        _ = try await api.addUser(carol.id, to: chat.id, as: alice)
        let alicePhone = try await fixture.connect(alice)
        let aliceLaptop = try await fixture.connect(alice)
        let bobSocket = try await fixture.connect(bob)
        let carolSocket = try await fixture.connect(carol)

        let left = try await api.leave(chat.id, as: alice).decode(ChatPayload.self, expecting: .ok)
        try await require(
            left.creatorID == bob.id && left.members.map(\.userID) == [bob.id, carol.id],
            "bob, who joined first after alice, is the creator; alice is no member")
        let frame = ServerFrame.memberRemoved(chatID: chat.id, userID: alice.id, creatorID: bob.id)
        for (name, socket) in [("alice's phone", alicePhone), ("alice's laptop", aliceLaptop), ("bob", bobSocket)] {
            try await require(try await socket.next(.memberRemoved) == frame, "\(name) hears alice left, bob leads")
        }
        try await require(try await carolSocket.next(.memberRemoved) == frame, "carol hears it")
        bobSocket.send(.send(chatID: chat.id, clientID: "after", text: "alice is gone"))
        try await require(try await deliveries(1, in: chat.id, on: carolSocket).map(\.seq) == [1], "the chat goes on")
        alicePhone.send(.send(chatID: chat.id, clientID: "late", text: "still here?"))
        let afterLeaving = try await frames(on: alicePhone, until: .error)
        try await require(afterLeaving.compactMap(\.message).isEmpty, "alice receives nothing after she left")
        try await require(
            afterLeaving.last?.errorCode == ErrorCode.notAMember.rawValue, "and her sends to the chat are refused")

        let again = try await api.leave(chat.id, as: alice)
        try await require(again.status == .notFound && again.error?.code == "chat_not_found", "leaving twice is 404")
        try await require(
            try await api.addUser(alice.id, to: chat.id, as: bob).status == .ok, "the new creator manages members")
        for socket in [alicePhone, aliceLaptop, bobSocket, carolSocket] { await socket.close() }
    }

    static func resume(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let aliceSocket = try await fixture.connect(alice)
        var bobSocket = try await fixture.connect(bob)
        for number in 1...3 { aliceSocket.send(.send(chatID: chat.id, clientID: "a\(number)", text: "\(number)")) }
        try await require(try await deliveries(3, in: chat.id, on: bobSocket).map(\.seq) == [1, 2, 3], "online")
        _ = try await deliveries(3, in: chat.id, on: aliceSocket)
        await bobSocket.close()
        for number in 4...6 {
            aliceSocket.send(.send(chatID: chat.id, clientID: "a\(number)", text: "\(number)"))
            _ = try await ack(on: aliceSocket)
        }
        bobSocket = try await fixture.connect(bob)
        try await require(bobSocket.ready.chats.first?.lastSeq == 6, "ready says where live delivery starts")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 3))
        // A live message racing the resume must come after the missed ones, exactly once.
        aliceSocket.send(.send(chatID: chat.id, clientID: "a7", text: "7"))
        let untilResumed = try await frames(on: bobSocket, until: .resumed)
        var seqs = untilResumed.compactMap(\.message).filter { $0.chatID == chat.id }.map(\.seq)
        // 7 went live before the server read the resume, which restarts the stream at 4.
        if seqs.first == 7 { seqs.removeFirst() }
        try await require(
            untilResumed.last == .resumed(chatID: chat.id, lastSeq: seqs.last ?? 3),
            "resumed names the last message sent before it: \(seqs), \(String(describing: untilResumed.last))")
        // 7 arrived after the resume ended: then it is live.
        if seqs.last != 7 { seqs += try await deliveries(1, in: chat.id, on: bobSocket).map(\.seq) }
        try await require(seqs == [4, 5, 6, 7], "missed messages, then live, without gap or repeat: \(seqs)")
        // Settled: `resumed` ends the messages a resume sends, naming where delivery stands.
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 5))
        let resumed = try await frames(on: bobSocket, until: .resumed)
        try await require(
            resumed.compactMap(\.message).map(\.seq) == [6, 7] && resumed.last == .resumed(chatID: chat.id, lastSeq: 7),
            "the resumed messages, then resumed at 7: \(resumed.map(\.kind))")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 99))
        guard case .error(let code, _, _, _, let errorChat) = try await bobSocket.next(.error),
            code == ErrorCode.resyncRequired.rawValue, errorChat == chat.id
        else { throw ContractFailure(description: "resuming past the end asks the client to read the chat again") }
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func editsReachEveryDevice(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let (phone, laptop, bobSocket) = (
            try await fixture.connect(alice), try await fixture.connect(alice), try await fixture.connect(bob)
        )
        phone.send(.send(chatID: chat.id, clientID: "typo", text: "helo"))
        let original = try await ack(on: phone).message
        for socket in [laptop, bobSocket] { _ = try await deliveries(1, in: chat.id, on: socket) }
        for text in ["hello", "hello!", "hello, Bob!"] {
            _ = try await api.editMessage(original.id, text: text, as: alice).decode(
                MessagePayload.self, expecting: .ok)
        }
        let tombstone = try await api.deleteMessage(original.id, as: alice).decode(MessagePayload.self, expecting: .ok)
        try await require(tombstone.updateSeq == 4, "four changes, four update_seqs")
        for socket in [phone, laptop, bobSocket] {
            let seen = try await updates(of: original.id, on: socket, until: tombstone.updateSeq)
            try await require(
                seen.map(\.updateSeq) == seen.map(\.updateSeq).sorted()
                    && Set(seen.map(\.updateSeq)).count == seen.count,
                "updates of one message arrive in the order made: \(seen.map(\.updateSeq))")
            let texts = seen.map(\.text)
            try await require(
                texts.allSatisfy(["hello", "hello!", "hello, Bob!", ""].contains) && seen.last == tombstone,
                "each is a state the message had, the last its tombstone: \(texts)")
        }
        for socket in [phone, laptop, bobSocket] { await socket.close() }
    }

    static func racedEdits(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let message = try await api.storeMessages(1, in: chat.id, from: alice.id)[0]
        let sockets = [
            try await fixture.connect(alice), try await fixture.connect(alice), try await fixture.connect(bob),
        ]
        // Two devices of alice edit the same message at once, ten times each.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for device in ["phone", "laptop"] {
                group.addTask {
                    for round in 1...10 {
                        let response = try await api.editMessage(message.id, text: "\(device) \(round)", as: alice)
                        try await require(response.status == .ok, "every edit is stored: \(response.status)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try await api.send(.get, "/history/\(chat.id)", as: bob).decode(
            [MessagePayload].self, expecting: .ok)[0]
        try await require(final.updateSeq == 20, "twenty edits, twenty update_seqs: \(final.updateSeq)")
        for socket in sockets {
            let seen = try await updates(of: message.id, on: socket, until: final.updateSeq)
            try await require(
                zip(seen, seen.dropFirst()).allSatisfy { $0.updateSeq < $1.updateSeq } && seen.last == final,
                "every connection ends on the stored state, never going back: \(seen.map(\.updateSeq))")
        }
        for socket in sockets { await socket.close() }
    }

    static func resumeAfterUpdate(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let held = try await api.storeMessages(3, in: chat.id, from: alice.id)
        var bobSocket = try await fixture.connect(bob)
        let start = bobSocket.ready.chats.first { $0.id == chat.id }
        try await require(start?.lastSeq == 3 && start?.lastUpdate == 0, "ready says where both positions start")
        await bobSocket.close()
        // While bob is away: an edit, a deletion, a new message.
        let edited = try await api.editMessage(held[0].id, text: "first, edited", as: alice).decode(
            MessagePayload.self, expecting: .ok)
        let deleted = try await api.deleteMessage(held[1].id, as: alice).decode(MessagePayload.self, expecting: .ok)
        try await api.storeMessages(1, in: chat.id, from: alice.id, prefix: "later")
        bobSocket = try await fixture.connect(bob)
        try await require(
            bobSocket.ready.chats.first { $0.id == chat.id }?.lastUpdate == 2, "ready reports the last update")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 3, afterUpdate: 0))
        let caughtUp = try await frames(on: bobSocket, until: .resumed)
        let updated = caughtUp.compactMap { frame -> MessagePayload? in
            if case .messageUpdated(let message) = frame { return message }
            return nil
        }
        try await require(
            updated.map(\.id) == [edited.id, deleted.id] && updated.map(\.text) == ["first, edited", ""]
                && updated.last?.deleted == true,
            "the changes made while away, in the order made: \(caughtUp.map(\.kind))")
        try await require(
            caughtUp.compactMap(\.message).map(\.seq) == [4] && caughtUp.last == .resumed(chatID: chat.id, lastSeq: 4),
            "then the new message, then resumed")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 4, afterUpdate: 2))
        let nothing = try await frames(on: bobSocket, until: .resumed)
        try await require(nothing == [.resumed(chatID: chat.id, lastSeq: 4)], "nothing missed, nothing sent")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 4, afterUpdate: 9))
        guard case .error(let code, _, _, _, _) = try await bobSocket.next(.error),
            code == ErrorCode.resyncRequired.rawValue
        else { throw ContractFailure(description: "an update position past the chat's asks for a resync") }
        await bobSocket.close()
    }

    static func replies(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob, chat) = try await pair(api)
        let elsewhere = try await api.createChat("Elsewhere", as: alice)
        let outside = try await api.storeMessages(1, in: elsewhere.id, from: alice.id, prefix: "x")[0]
        let (aliceSocket, bobSocket) = (try await fixture.connect(alice), try await fixture.connect(bob))
        aliceSocket.send(.send(chatID: chat.id, clientID: "q", text: "lunch?"))
        let question = try await ack(on: aliceSocket).message
        try await require(question.replyTo == nil, "a message that answers none says so")
        bobSocket.send(.send(chatID: chat.id, clientID: "a", text: "yes", replyTo: question.id))
        let answer = try await ack(on: bobSocket).message
        let delivered = try await deliveries(1, in: chat.id, on: aliceSocket).last
        try await require(
            answer.replyTo == question.id && delivered?.replyTo == question.id, "the reply names its original")
        for (clientID, target) in [("b1", outside.id), ("b2", MessageID(999_999))] {
            bobSocket.send(.send(chatID: chat.id, clientID: clientID, text: "no", replyTo: target))
            guard case .error(let code, _, let ref, _, let errorChat) = try await bobSocket.next(.error),
                code == ErrorCode.invalidReply.rawValue, ref == clientID, errorChat == chat.id
            else { throw ContractFailure(description: "a reply to \(target) outside the chat is refused") }
        }
        _ = try await api.deleteMessage(question.id, as: alice)
        let history = try await api.send(.get, "/history/\(chat.id)", as: bob).decode(
            [MessagePayload].self, expecting: .ok)
        try await require(
            history.map(\.seq) == [1, 2] && history.last?.replyTo == question.id,
            "refused replies took no seq; a reply still points at its deleted original")
        await aliceSocket.close()
        await bobSocket.close()
    }

    /// The `message_updated` frames about `message` on the connection, up to the one with
    /// `updateSeq` (later ones may repeat or skip earlier states, never go back).
    static func updates(
        of message: MessageID, on socket: ChatWebSocketClient, until updateSeq: Int64
    ) async throws -> [MessagePayload] {
        var seen: [MessagePayload] = []
        while seen.last?.updateSeq ?? 0 < updateSeq {
            switch try await socket.next() {
            case .messageUpdated(let updated) where updated.id == message: seen.append(updated)
            case .error(let code, let text, _, _, _): throw ContractFailure(description: "error frame \(code): \(text)")
            default: continue
            }
        }
        return seen
    }

    static func adminSync(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
        _ = try await api.store.setAdmin(true, nameKey: "alice")
        let chat = try await api.createChat("Elsewhere", as: bob)
        let aliceSocket = try await fixture.connect(alice)
        let bobSocket = try await fixture.connect(bob)
        // Changed in the database only: the hub cannot know until it is told to resync.
        try await api.store.addMember(alice.id, to: chat.id)
        let report = try await api.send(.get, "/chat/sync/persistent", as: alice)
            .decode(SyncReportPayload.self, expecting: .ok)
        let live: Int64 = fixture.ports.count == 1 ? 2 : 1
        try await require(
            report.liveUsers == live && report.liveConnections == live, "the report counts this node's connections")
        guard case .memberAdded(let chatID, _, _?) = try await aliceSocket.next(.memberAdded), chatID == chat.id else {
            throw ContractFailure(description: "alice was not subscribed by the sync")
        }
        bobSocket.send(.send(chatID: chat.id, clientID: "b1", text: "hi"))
        try await require(try await deliveries(1, in: chat.id, on: aliceSocket).map(\.seq) == [1], "alice receives")
        try await api.store.removeMember(alice.id, from: chat.id)
        _ = try await api.send(.get, "/chat/sync/persistent", as: alice)
        try await require(
            try await aliceSocket.next(.memberRemoved) == .memberRemoved(chatID: chat.id, userID: alice.id),
            "alice was unsubscribed by the sync")
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func logout(_ fixture: RealtimeFixture) async throws {
        let api = fixture.api
        let alice = try await api.user("alice")
        let socket = try await fixture.connect(alice)
        let other = try await fixture.connect(
            TestUser(
                id: alice.id, name: alice.name,
                token: try await api.logIn("alice").decode(TokenPayload.self, expecting: .ok).accessToken))
        try await require(try await api.send(.post, "/auth/logout", as: alice).status == .noContent, "logged out")
        let close = try await socket.closedByServer()
        try await require(close?.closeCode == .policyViolation, "closed with 1008, got \(String(describing: close))")
        // A frame that gets an answer shows the other session's socket is still open.
        other.send(.typing(chatID: ChatID(999_999)))
        guard case .error = try await other.next(.error) else {
            throw ContractFailure(description: "the other session's socket stays open")
        }
        await other.close()
    }

    // MARK: Helpers

    /// Users alice and bob and their private chat.
    public static func pair(_ api: APITestClient) async throws -> (alice: TestUser, bob: TestUser, chat: ChatPayload) {
        let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
        let chat = try await api.createChat("Pair", type: .private, as: alice)
        _ = try await api.addUser(bob.id, to: chat.id, as: alice)
        return (alice, bob, chat)
    }

    /// The next `count` messages of `chat` this connection receives, as `message` frames or as
    /// `ack`s of its own sends (not duplicate acks, which repeat an earlier delivery).
    public static func deliveries(
        _ count: Int, in chat: ChatID, on socket: ChatWebSocketClient, timeout: Duration = Patience.wait
    ) async throws -> [MessagePayload] {
        var received: [MessagePayload] = []
        while received.count < count {
            switch try await socket.next(timeout: timeout) {
            case .message(let message) where message.chatID == chat: received.append(message)
            case .ack(_, let message, false) where message.chatID == chat: received.append(message)
            case .error(let code, let message, let ref, _, _):
                throw ContractFailure(description: "error frame \(code): \(message) (ref \(ref ?? "-"))")
            default: continue
            }
        }
        return received
    }

    /// The next `ack` on the connection.
    static func ack(on socket: ChatWebSocketClient) async throws -> (message: MessagePayload, duplicate: Bool) {
        guard case .ack(_, let message, let duplicate) = try await socket.next(.ack) else {
            throw ContractFailure(description: "expected an ack")
        }
        return (message, duplicate)
    }

    /// Frames up to and including the first of `kind`.
    public static func frames(
        on socket: ChatWebSocketClient, until kind: ServerFrame.Kind
    ) async throws -> [ServerFrame] {
        var frames: [ServerFrame] = []
        repeat {
            frames.append(try await socket.next())
        } while frames.last?.kind != kind
        return frames
    }
}

extension ServerFrame {
    /// The message a `message` frame carries.
    var message: MessagePayload? {
        if case .message(let message) = self { return message }
        return nil
    }

    /// The code an `error` frame carries.
    var errorCode: String? {
        if case .error(let code, _, _, _, _) = self { return code }
        return nil
    }
}

extension Sequence {
    public func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
