import ChatProtocol
import NIOHTTP1
import NIOWebSocket
import WSCore

/// The real-time guarantees of docs/protocol.md, over real WebSocket connections; with two
/// nodes, connections alternate between them, so every one of these crosses nodes.
extension ConformanceSuite {
    static let realtimeChecks: [ConformanceCheck] = [
        ConformanceCheck("ready lists chats with positions, markers and presence", run: ready),
        ConformanceCheck("concurrent senders: every connection sees seq order without gaps", run: ordering),
        ConformanceCheck("a retried client id is acknowledged as a duplicate, broadcast once", run: retries),
        ConformanceCheck("a client id raced from two devices is stored once", run: racedDevices),
        ConformanceCheck("read markers move forward and reach every device", run: readMarkers),
        ConformanceCheck("presence follows a user's first and last connection", run: presence),
        ConformanceCheck("membership changes take effect on open connections", run: membership),
        ConformanceCheck(
            "a creator who leaves hands the chat to the earliest member; every device hears it", run: leaving),
        ConformanceCheck("resume streams what was missed, ends with resumed, then live continues", run: resume),
        ConformanceCheck(
            "edits and deletions reach every device, the actor's too, in the order made", run: editsReachEveryDevice),
        ConformanceCheck("edits raced from two devices converge on every connection", run: racedEdits),
        ConformanceCheck(
            "resume with after_update brings the edits and deletions made while away", run: resumeAfterUpdate),
        ConformanceCheck("a reply names a message of its chat; any other is refused", run: replies),
        ConformanceCheck("logging out closes the session's sockets with 1008, and only that session's", run: logout),
    ]

    static func ready(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        // One node: another node learns of bob's presence a moment later.
        let first = try await target.connect(alice, node: 0)
        _ = try await target.store(3, in: chat.id, on: first)
        let bobSocket = try await target.connect(bob, node: 0)
        bobSocket.send(.read(chatID: chat.id, seq: 2))
        _ = try await first.next(.read)
        let aliceSocket = try await target.connect(alice, node: 0)
        let ready = aliceSocket.ready
        try require(ready.user == UserPayload(id: alice.id, name: alice.name), "ready names the user: \(ready.user)")
        try require(ready.chats.count == 1 && ready.chats[0].id == chat.id, "ready lists the chat: \(ready.chats)")
        try require(ready.chats[0].lastSeq == 3 && ready.chats[0].chatType == .private, "with its position")
        try require(
            ready.chats[0].members == [
                ReadyMember(userID: alice.id, name: alice.name, readSeq: 3, online: true),
                ReadyMember(userID: bob.id, name: bob.name, readSeq: 2, online: true),
            ], "with every member's marker and presence: \(ready.chats[0].members)")
        try require(ready.resumeLimit >= 1, "and the resume limit")
        try require(
            !ready.generation.isEmpty && ready.generation == bobSocket.ready.generation,
            "and the database's generation, the same on every connection")
        for socket in [first, bobSocket, aliceSocket] { await socket.close() }
    }

    static func ordering(_ target: ConformanceTarget) async throws {
        let users = try await (0..<4).asyncMap { try await target.register("u\($0)") }
        let chat = try await target.group("busy", of: users[0], with: Array(users.dropFirst()))
        var sockets = try await users.asyncMap { try await target.connect($0) }
        sockets.append(try await target.connect(users[0]))
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
                group.addTask { try await socket.deliveries(total, in: chat.id).map(\.seq) }
            }
            for try await seqs in group {
                try require(seqs == Array(1...Int64(total)), "each connection sees 1...\(total) in order: \(seqs)")
            }
        }
        for socket in sockets { await socket.close() }
    }

    static func retries(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        let aliceSocket = try await target.connect(alice)
        let bobSocket = try await target.connect(bob)
        aliceSocket.send(.send(chatID: chat.id, clientID: "c1", text: "first"))
        let first = try await aliceSocket.ack()
        aliceSocket.send(.send(chatID: chat.id, clientID: "c1", text: "retried with other text"))
        let retry = try await aliceSocket.ack()
        try require(!first.duplicate && retry.duplicate, "the retry is marked duplicate")
        try require(retry.message == first.message && retry.message.text == "first", "with the original message")
        aliceSocket.send(.send(chatID: chat.id, clientID: "c2", text: "second"))
        try require(try await aliceSocket.ack().message.seq == 2, "the retry consumed no seq")
        let received = try await bobSocket.deliveries(2, in: chat.id)
        try require(received.map(\.clientID) == ["c1", "c2"], "the other member got the message once")
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func racedDevices(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        let phone = try await target.connect(alice)
        let laptop = try await target.connect(alice)
        let bobSocket = try await target.connect(bob)
        for round in 0..<5 {
            phone.send(.send(chatID: chat.id, clientID: "raced-\(round)", text: "from the phone"))
            laptop.send(.send(chatID: chat.id, clientID: "raced-\(round)", text: "from the laptop"))
            let (fromPhone, fromLaptop) = (try await phone.ack(), try await laptop.ack())
            try require(fromPhone.message == fromLaptop.message, "both devices get the same message")
            try require(fromPhone.duplicate != fromLaptop.duplicate, "exactly one of them stored it")
            try require(fromPhone.message.seq == Int64(round + 1), "one seq per round")
        }
        let received = try await bobSocket.deliveries(5, in: chat.id)
        try require(received.map(\.seq) == [1, 2, 3, 4, 5], "broadcast once per round")
        for socket in [phone, laptop, bobSocket] { await socket.close() }
    }

    static func readMarkers(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        let aliceSocket = try await target.connect(alice)
        _ = try await target.store(3, in: chat.id, on: aliceSocket)
        let bobPhone = try await target.connect(bob)
        let bobLaptop = try await target.connect(bob)
        bobPhone.send(.read(chatID: chat.id, seq: 2))
        let expected = ServerFrame.read(chatID: chat.id, userID: bob.id, seq: 2)
        try require(try await aliceSocket.next(.read) == expected, "the sender learns of the read")
        try require(try await bobLaptop.next(.read) == expected, "the reader's other device too")
        bobPhone.send(.read(chatID: chat.id, seq: 1))
        bobPhone.send(.read(chatID: chat.id, seq: 99))
        let clamped = ServerFrame.read(chatID: chat.id, userID: bob.id, seq: 3)
        try require(try await aliceSocket.next(.read) == clamped, "never back, never past the last seq")
        let history = try await target.request(.GET, "/history/\(chat.id)", token: alice.token)
            .decode([MessagePayload].self, expecting: 200)
        try require(history.map(\.isRead) == [true, true, true], "history shows the messages read")
        for socket in [aliceSocket, bobPhone, bobLaptop] { await socket.close() }
    }

    static func presence(_ target: ConformanceTarget) async throws {
        let (alice, bob, _) = try await target.pair()
        let aliceSocket = try await target.connect(alice)
        let bobPhone = try await target.connect(bob)
        try require(try await aliceSocket.next(.presence) == .presence(userID: bob.id, online: true), "bob came online")
        let bobLaptop = try await target.connect(bob)
        await bobPhone.close()
        await bobLaptop.close()
        // Had the second device or the first close announced anything, it would come first.
        let last = try await aliceSocket.next(.presence)
        try require(
            last == .presence(userID: bob.id, online: false), "bob went offline with his last connection: \(last)")
        await aliceSocket.close()
    }

    static func membership(_ target: ConformanceTarget) async throws {
        let (alice, bob, carol) = (
            try await target.register("alice"), try await target.register("bob"), try await target.register("carol")
        )
        let chat = try await target.group("team", of: alice, with: [bob])
        let aliceSocket = try await target.connect(alice)
        let bobSocket = try await target.connect(bob)
        let carolSocket = try await target.connect(carol)
        aliceSocket.send(.send(chatID: chat.id, clientID: "before", text: "before carol"))
        _ = try await aliceSocket.ack()

        _ = try await target.addUser(carol, to: chat.id, as: alice).decode(ChatPayload.self, expecting: 200)
        guard case .memberAdded(let chatID, let userID, let added?) = try await carolSocket.next(.memberAdded) else {
            throw CheckFailure("carol got no member_added with the chat")
        }
        try require(chatID == chat.id && userID == carol.id && added.lastSeq == 1, "carol follows from seq 1")
        try require(
            try await bobSocket.next(.memberAdded) == .memberAdded(chatID: chat.id, userID: carol.id, chat: nil),
            "members learn of carol")
        aliceSocket.send(.send(chatID: chat.id, clientID: "after", text: "welcome carol"))
        try require(try await carolSocket.deliveries(1, in: chat.id).map(\.seq) == [2], "carol receives")

        _ = try await target.removeUser(bob, from: chat.id, as: alice).decode(ChatPayload.self, expecting: 200)
        let removed = ServerFrame.memberRemoved(chatID: chat.id, userID: bob.id)
        try require(try await carolSocket.next(.memberRemoved) == removed, "members learn of bob leaving")
        aliceSocket.send(.send(chatID: chat.id, clientID: "gone", text: "bob cannot see this"))
        try require(try await carolSocket.deliveries(1, in: chat.id).map(\.seq) == [3], "the chat goes on")
        bobSocket.send(.send(chatID: chat.id, clientID: "late", text: "hello?"))
        let afterRemoval = try await bobSocket.frames(until: .error)
        try require(
            afterRemoval.compactMap(\.message).allSatisfy { $0.seq <= 2 }, "bob receives nothing after his removal")
        try require(afterRemoval.contains(removed), "bob was told he was removed")
        guard case .error(let code, _, "late", _, chat.id)? = afterRemoval.last, code == ErrorCode.notAMember.rawValue
        else { throw CheckFailure("bob's send is refused as not_a_member, naming the chat: \(afterRemoval.last!)") }
        for socket in [aliceSocket, bobSocket, carolSocket] { await socket.close() }
    }

    static func leaving(_ target: ConformanceTarget) async throws {
        let (alice, bob, carol) = (
            try await target.register("alice"), try await target.register("bob"), try await target.register("carol")
        )
        let chat = try await target.group("team", of: alice, with: [bob, carol])
        let alicePhone = try await target.connect(alice)
        let aliceLaptop = try await target.connect(alice)
        let bobSocket = try await target.connect(bob)
        let carolSocket = try await target.connect(carol)

        let left = try await target.request(.POST, "/chat/leave/\(chat.id)", token: alice.token)
            .decode(ChatPayload.self, expecting: 200)
        try require(
            left.creatorID == bob.id && left.members.map(\.userID) == [bob.id, carol.id],
            "bob, who joined first after alice, is the creator; alice is no member")
        let frame = ServerFrame.memberRemoved(chatID: chat.id, userID: alice.id, creatorID: bob.id)
        for (name, socket) in [("alice's phone", alicePhone), ("alice's laptop", aliceLaptop), ("bob", bobSocket)] {
            try require(try await socket.next(.memberRemoved) == frame, "\(name) hears alice left, bob leads")
        }
        try require(try await carolSocket.next(.memberRemoved) == frame, "carol hears it")
        bobSocket.send(.send(chatID: chat.id, clientID: "after", text: "alice is gone"))
        try require(try await carolSocket.deliveries(1, in: chat.id).map(\.seq) == [1], "the chat goes on")
        alicePhone.send(.send(chatID: chat.id, clientID: "late", text: "still here?"))
        let afterLeaving = try await alicePhone.frames(until: .error)
        try require(afterLeaving.compactMap(\.message).isEmpty, "alice receives nothing after she left")
        try require(
            afterLeaving.last?.errorCode == ErrorCode.notAMember.rawValue, "and her sends to the chat are refused")

        let again = try await target.request(.POST, "/chat/leave/\(chat.id)", token: alice.token)
        try require(again.status == 404 && again.errorCode == "chat_not_found", "leaving twice is 404: \(again.status)")
        let readded = try await target.addUser(alice, to: chat.id, as: bob)
        try require(readded.status == 200, "the new creator manages members: \(readded.status)")
        for socket in [alicePhone, aliceLaptop, bobSocket, carolSocket] { await socket.close() }
    }

    static func resume(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        let aliceSocket = try await target.connect(alice)
        var bobSocket = try await target.connect(bob)
        for number in 1...3 { aliceSocket.send(.send(chatID: chat.id, clientID: "a\(number)", text: "\(number)")) }
        try require(try await bobSocket.deliveries(3, in: chat.id).map(\.seq) == [1, 2, 3], "online")
        _ = try await aliceSocket.deliveries(3, in: chat.id)
        await bobSocket.close()
        for number in 4...6 {
            aliceSocket.send(.send(chatID: chat.id, clientID: "a\(number)", text: "\(number)"))
            _ = try await aliceSocket.ack()
        }
        bobSocket = try await target.connect(bob)
        try require(bobSocket.ready.chats.first?.lastSeq == 6, "ready says where live delivery starts")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 3))
        // A live message racing the resume must come after the missed ones, exactly once.
        aliceSocket.send(.send(chatID: chat.id, clientID: "a7", text: "7"))
        let untilResumed = try await bobSocket.frames(until: .resumed)
        var seqs = untilResumed.compactMap(\.message).filter { $0.chatID == chat.id }.map(\.seq)
        // 7 went live before the server read the resume, which restarts the stream at 4.
        if seqs.first == 7 { seqs.removeFirst() }
        try require(
            untilResumed.last == .resumed(chatID: chat.id, lastSeq: seqs.last ?? 3),
            "resumed names the last message sent before it: \(seqs), \(String(describing: untilResumed.last))")
        // 7 arrived after the resume ended: then it is live.
        if seqs.last != 7 { seqs += try await bobSocket.deliveries(1, in: chat.id).map(\.seq) }
        try require(seqs == [4, 5, 6, 7], "missed messages, then live, without gap or repeat: \(seqs)")
        // Settled: `resumed` ends the messages a resume sends, naming where delivery stands.
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 5))
        let resumed = try await bobSocket.frames(until: .resumed)
        try require(
            resumed.compactMap(\.message).map(\.seq) == [6, 7] && resumed.last == .resumed(chatID: chat.id, lastSeq: 7),
            "the resumed messages, then resumed at 7: \(resumed.map(\.kind))")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 99))
        guard case .error(let code, _, _, _, let errorChat) = try await bobSocket.next(.error),
            code == ErrorCode.resyncRequired.rawValue, errorChat == chat.id
        else { throw CheckFailure("resuming past the end asks the client to read the chat again") }
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func editsReachEveryDevice(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        let (phone, laptop, bobSocket) = (
            try await target.connect(alice), try await target.connect(alice), try await target.connect(bob)
        )
        phone.send(.send(chatID: chat.id, clientID: "typo", text: "helo"))
        let original = try await phone.ack().message
        for socket in [laptop, bobSocket] { _ = try await socket.deliveries(1, in: chat.id) }
        for text in ["hello", "hello!", "hello, Bob!"] {
            _ = try await target.edit(original.id, text: text, as: alice).decode(MessagePayload.self, expecting: 200)
        }
        let tombstone = try await target.request(.DELETE, "/messages/\(original.id)", token: alice.token)
            .decode(MessagePayload.self, expecting: 200)
        try require(tombstone.updateSeq == 4, "four changes, four update_seqs")
        for socket in [phone, laptop, bobSocket] {
            let seen = try await socket.updates(of: original.id, until: tombstone.updateSeq)
            try require(
                seen.map(\.updateSeq) == seen.map(\.updateSeq).sorted()
                    && Set(seen.map(\.updateSeq)).count == seen.count,
                "updates of one message arrive in the order made: \(seen.map(\.updateSeq))")
            let texts = seen.map(\.text)
            try require(
                texts.allSatisfy(["hello", "hello!", "hello, Bob!", ""].contains) && seen.last == tombstone,
                "each is a state the message had, the last its tombstone: \(texts)")
        }
        for socket in [phone, laptop, bobSocket] { await socket.close() }
    }

    static func racedEdits(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        let sockets = [try await target.connect(alice), try await target.connect(alice), try await target.connect(bob)]
        let message = try await target.store(1, in: chat.id, on: sockets[0])[0]
        // Two devices of alice edit the same message at once, ten times each.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for device in ["phone", "laptop"] {
                group.addTask {
                    for round in 1...10 {
                        let response = try await target.edit(message.id, text: "\(device) \(round)", as: alice)
                        try require(response.status == 200, "every edit is stored: \(response.status)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try await target.request(.GET, "/history/\(chat.id)", token: bob.token)
            .decode([MessagePayload].self, expecting: 200)[0]
        try require(final.updateSeq == 20, "twenty edits, twenty update_seqs: \(final.updateSeq)")
        for socket in sockets {
            let seen = try await socket.updates(of: message.id, until: final.updateSeq)
            try require(
                zip(seen, seen.dropFirst()).allSatisfy { $0.updateSeq < $1.updateSeq } && seen.last == final,
                "every connection ends on the stored state, never going back: \(seen.map(\.updateSeq))")
        }
        for socket in sockets { await socket.close() }
    }

    static func resumeAfterUpdate(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        let aliceSocket = try await target.connect(alice)
        let held = try await target.store(3, in: chat.id, on: aliceSocket)
        var bobSocket = try await target.connect(bob)
        let start = bobSocket.ready.chats.first { $0.id == chat.id }
        try require(start?.lastSeq == 3 && start?.lastUpdate == 0, "ready says where both positions start")
        await bobSocket.close()
        // While bob is away: an edit, a deletion, a new message.
        let edited = try await target.edit(held[0].id, text: "first, edited", as: alice)
            .decode(MessagePayload.self, expecting: 200)
        let deleted = try await target.request(.DELETE, "/messages/\(held[1].id)", token: alice.token)
            .decode(MessagePayload.self, expecting: 200)
        _ = try await target.store(1, in: chat.id, on: aliceSocket, label: "later")
        bobSocket = try await target.connect(bob)
        // `ready` gives where live delivery starts; a node that has not yet heard of a change
        // made on another node starts before it and delivers it live (docs/protocol.md).
        let position = bobSocket.ready.chats.first { $0.id == chat.id }
        try require(
            (position?.lastUpdate ?? 0) <= 2 && (position?.lastSeq ?? 0) <= 4,
            "ready is never ahead of the chat: \(String(describing: position))")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 3, afterUpdate: 0))
        // Until `resumed`, and until the last change and the new message have come, before it
        // or live after it.
        var caughtUp: [ServerFrame] = []
        var updated: [MessagePayload] = []
        repeat {
            let frame = try await bobSocket.next()
            caughtUp.append(frame)
            if case .messageUpdated(let message) = frame { updated.append(message) }
        } while !caughtUp.contains(where: { $0.kind == .resumed }) || updated.last?.updateSeq != 2
            || !caughtUp.contains { $0.message?.seq == 4 }
        try require(
            updated.map(\.id) == [edited.id, deleted.id] && updated.map(\.text) == ["first, edited", ""]
                && updated.last?.deleted == true,
            "the changes made while away, once each, in the order made: \(caughtUp.map(\.kind))")
        try require(caughtUp.compactMap(\.message).map(\.seq) == [4], "and the new message, once")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 4, afterUpdate: 2))
        let nothing = try await bobSocket.frames(until: .resumed)
        try require(nothing == [.resumed(chatID: chat.id, lastSeq: 4)], "nothing missed, nothing sent")
        bobSocket.send(.resume(chatID: chat.id, afterSeq: 4, afterUpdate: 9))
        guard case .error(let code, _, _, _, _) = try await bobSocket.next(.error),
            code == ErrorCode.resyncRequired.rawValue
        else { throw CheckFailure("an update position past the chat's asks for a resync") }
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func replies(_ target: ConformanceTarget) async throws {
        let (alice, bob, chat) = try await target.pair()
        let elsewhere = try await target.createChat("elsewhere", as: alice)
        let (aliceSocket, bobSocket) = (try await target.connect(alice), try await target.connect(bob))
        let outside = try await target.store(1, in: elsewhere.id, on: aliceSocket, label: "x")[0]
        aliceSocket.send(.send(chatID: chat.id, clientID: "q", text: "lunch?"))
        let question = try await aliceSocket.ack().message
        try require(question.replyTo == nil, "a message that answers none says so")
        bobSocket.send(.send(chatID: chat.id, clientID: "a", text: "yes", replyTo: question.id))
        let answer = try await bobSocket.ack().message
        let delivered = try await aliceSocket.deliveries(1, in: chat.id).last
        try require(answer.replyTo == question.id && delivered?.replyTo == question.id, "the reply names its original")
        for (clientID, original) in [("b1", outside.id), ("b2", MessageID(999_999_999))] {
            bobSocket.send(.send(chatID: chat.id, clientID: clientID, text: "no", replyTo: original))
            guard case .error(let code, _, let ref, _, let errorChat) = try await bobSocket.next(.error),
                code == ErrorCode.invalidReply.rawValue, ref == clientID, errorChat == chat.id
            else { throw CheckFailure("a reply to \(original) outside the chat is refused") }
        }
        _ = try await target.request(.DELETE, "/messages/\(question.id)", token: alice.token)
        let history = try await target.request(.GET, "/history/\(chat.id)", token: bob.token)
            .decode([MessagePayload].self, expecting: 200)
        try require(
            history.map(\.seq) == [1, 2] && history.last?.replyTo == question.id,
            "refused replies took no seq; a reply still points at its deleted original")
        await aliceSocket.close()
        await bobSocket.close()
    }

    static func logout(_ target: ConformanceTarget) async throws {
        let alice = try await target.register("alice")
        let socket = try await target.connect(alice)
        let otherToken = try await target.logIn(alice.name, password: alice.password)
            .decode(TokenPayload.self, expecting: 200).accessToken
        let other = try await target.connect(
            ConformanceTarget.Account(id: alice.id, name: alice.name, password: alice.password, token: otherToken))
        let logout = try await target.request(.POST, "/auth/logout", token: alice.token)
        try require(logout.status == 204, "logged out: \(logout.status)")
        let close = try await socket.closedByServer()
        try require(close?.closeCode == .policyViolation, "closed with 1008, got \(String(describing: close))")
        // A frame that gets an answer shows the other session's socket is still open.
        other.send(.typing(chatID: ChatID(999_999_999)))
        guard case .error = try await other.next(.error) else {
            throw CheckFailure("the other session's socket stays open")
        }
        await other.close()
    }
}
