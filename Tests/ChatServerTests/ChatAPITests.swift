import ChatProtocol
import ChatServer
import ChatTestSupport
import HTTPTypes
import HummingbirdTesting
import Testing

@Suite("Chats and membership API")
struct ChatAPITests {
    @Test func creatingAChatMakesTheCallerCreatorAndFirstMember() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let chat = try await api.createChat("  Team  ", type: .group, as: alice)
            #expect(chat.name == "Team" && chat.chatType == .group && chat.creatorID == alice.id && chat.lastSeq == 0)
            #expect(chat.members == [MemberPayload(userID: alice.id, name: "alice", readSeq: 0)])
        }
    }

    @Test(
        "invalid chats get 422",
        arguments: [
            (#"{"name":"x","chat_type":"CHANNEL"}"#, "chat_type: must be PRIVATE or GROUP"),
            (#"{"name":"x","chat_type":"private"}"#, "chat_type: must be PRIVATE or GROUP"),
            (#"{"name":"x"}"#, "chat_type: is required"),
            (#"{"name":"","chat_type":"GROUP"}"#, "name: must not be empty"),
            (#"{"name":["x"],"chat_type":"GROUP"}"#, "name: must be a string"),
        ])
    func invalidChats(_ body: String, _ message: String) async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let response = try await api.sendRaw(.post, "/chat", body: body, contentType: "application/json", as: alice)
            #expect(response.status == .unprocessableContent)
            #expect(response.error?.message == message)
        }
    }

    @Test func onlyTheCreatorManagesMembers() async throws {
        try await TestApp.run { api in
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let chat = try await api.createChat("Team", as: alice)
            let added = try await api.addUser(bob.id, to: chat.id, as: alice).decode(ChatPayload.self, expecting: .ok)
            #expect(added.members.map(\.userID) == [alice.id, bob.id])

            let byMember = try await api.addUser(carol.id, to: chat.id, as: bob)
            #expect(byMember.status == .forbidden && byMember.error?.code == "creator_only")
            let removeByMember = try await api.removeUser(alice.id, from: chat.id, as: bob)
            #expect(removeByMember.status == .forbidden)

            let removed = try await api.removeUser(bob.id, from: chat.id, as: alice).decode(
                ChatPayload.self, expecting: .ok)
            #expect(removed.members.map(\.userID) == [alice.id])
            let history = try await api.send(.get, "/history/\(chat.id)", as: bob)
            #expect(history.status == .notFound, "a removed member loses the history")
        }
    }

    /// Any member may leave; a creator who leaves hands the chat to the member who joined
    /// earliest, and one who is not a member gets the same 404 as for a missing chat.
    @Test func anyMemberMayLeave() async throws {
        try await TestApp.run { api in
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let chat = try await api.createChat("Team", as: alice)
            _ = try await api.addUser(bob.id, to: chat.id, as: alice)
            _ = try await api.addUser(carol.id, to: chat.id, as: alice)
            let bobLeft = try await api.leave(chat.id, as: bob).decode(ChatPayload.self, expecting: .ok)
            #expect(bobLeft.members.map(\.userID) == [alice.id, carol.id] && bobLeft.creatorID == alice.id)
            #expect(try await api.send(.get, "/history/\(chat.id)", as: bob).status == .notFound, "bob lost access")

            let aliceLeft = try await api.leave(chat.id, as: alice).decode(ChatPayload.self, expecting: .ok)
            #expect(aliceLeft.creatorID == carol.id && aliceLeft.members.map(\.userID) == [carol.id])
            let seenByCarol = try await api.send(.get, "/chats/\(chat.id)", as: carol).decode(
                ChatPayload.self, expecting: .ok)
            #expect(seenByCarol.creatorID == carol.id, "the new creator is stored")
            let events = try await api.send(.get, "/chats/\(chat.id)/membership-events", as: carol).decode(
                [MembershipEventPayload].self, expecting: .ok)
            #expect(
                events.suffix(2).map { "\($0.userName) by \($0.actorName ?? "-")" } == [
                    "bob by bob", "alice by alice",
                ],
                "a leave is recorded with the member who left as its actor")

            for (uri, status, code) in [
                ("/chat/leave/\(chat.id)", HTTPResponse.Status.notFound, "chat_not_found"),
                ("/chat/leave/999999", .notFound, "chat_not_found"),
                ("/chat/leave/abc", .unprocessableContent, "validation_failed"),
            ] {
                let refused = try await api.send(.post, uri, as: alice)
                #expect(refused.status == status && refused.error?.code == code, "\(uri)")
            }
            let anonymous = try await api.send(.post, "/chat/leave/\(chat.id)")
            #expect(anonymous.status == .unauthorized)
        }
    }

    /// "Sergey removed Arina" after a reload: every change is recorded with who did it and
    /// after which message, and only members read them.
    @Test func membershipChangesAreListedWhereTheyHappened() async throws {
        try await TestApp.run { api in
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let chat = try await api.createChat("Team", as: alice)
            _ = try await api.addUser(bob.id, to: chat.id, as: alice)
            try await api.storeMessages(1, in: chat.id, from: alice.id)
            _ = try await api.addUser(carol.id, to: chat.id, as: alice)
            _ = try await api.removeUser(bob.id, from: chat.id, as: alice)
            let uri = "/chats/\(chat.id)/membership-events"
            let events = try await api.send(.get, uri, as: carol).decode(
                [MembershipEventPayload].self, expecting: .ok)
            #expect(events.map(\.type) == [.memberAdded, .memberAdded, .memberRemoved])
            #expect(events.map(\.userName) == ["bob", "carol", "bob"] && events.map(\.afterSeq) == [0, 1, 1])
            #expect(events.allSatisfy { $0.actorID == alice.id && $0.actorName == "alice" && $0.chatID == chat.id })
            let afterFirst = try await api.send(.get, "\(uri)?from_seq=1&to_seq=1&limit=1", as: alice).decode(
                [MembershipEventPayload].self, expecting: .ok)
            #expect(afterFirst.map(\.userName) == ["carol"])
            let emptyRange = try await api.send(.get, "\(uri)?from_seq=3&to_seq=2", as: alice).decode(
                [MembershipEventPayload].self, expecting: .ok)
            #expect(emptyRange.isEmpty)

            let removed = try await api.send(.get, uri, as: bob)
            #expect(removed.status == .notFound && removed.error?.code == "chat_not_found", "a former member")
            for (query, message) in [
                ("?from_seq=-1", "from_seq: must not be negative"), ("?to_seq=-1", "to_seq: must not be negative"),

                ("?limit=0", "limit: must be from 1 to 500"), ("?limit=501", "limit: must be from 1 to 500"),
                ("?to_seq=x", "to_seq: must be an integer"),
            ] {
                let refused = try await api.send(.get, uri + query, as: alice)
                #expect(refused.status == .unprocessableContent && refused.error?.message == message, "\(query)")
            }
        }
    }

    @Test func chatsAreInvisibleToNonMembers() async throws {
        try await TestApp.run { api in
            let (alice, mallory) = (try await api.user("alice"), try await api.user("mallory"))
            let chat = try await api.createChat("Secret", as: alice)
            for uri in ["/history/\(chat.id)", "/chats/\(chat.id)", "/history/999999", "/chats/999999"] {
                let response = try await api.send(.get, uri, as: mallory)
                #expect(response.status == .notFound && response.error?.code == "chat_not_found", "\(uri)")
            }
            // An outsider cannot tell whether a chat exists, even when trying to manage it.
            let existing = try await api.addUser(mallory.id, to: chat.id, as: mallory)
            let missing = try await api.addUser(mallory.id, to: ChatID(999_999), as: mallory)
            #expect(existing.status == .notFound && existing.bodyText == missing.bodyText)
        }
    }

    @Test func membershipConflictsAndUnknownsAreReported() async throws {
        try await TestApp.run { api in
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let pair = try await api.createChat("Pair", type: .private, as: alice)
            #expect(try await api.addUser(bob.id, to: pair.id, as: alice).status == .ok)
            let again = try await api.addUser(bob.id, to: pair.id, as: alice)
            #expect(again.status == .conflict && again.error?.code == "already_member")
            let third = try await api.addUser(carol.id, to: pair.id, as: alice)
            #expect(third.status == .conflict && third.error?.code == "private_chat_full")
            let unknown = try await api.addUser(UserID(424_242), to: pair.id, as: alice)
            #expect(unknown.status == .notFound && unknown.error?.code == "user_not_found")
            let creator = try await api.removeUser(alice.id, from: pair.id, as: alice)
            #expect(creator.status == .conflict && creator.error?.code == "creator_cannot_be_removed")
            let notMember = try await api.removeUser(carol.id, from: pair.id, as: alice)
            #expect(notMember.status == .notFound && notMember.error?.code == "not_a_member")
            let badID = try await api.send(.post, "/chat/add_user/bob/\(pair.id)", as: alice)
            #expect(badID.status == .unprocessableContent && badID.error?.message == "user_id: must be an integer")
        }
    }

    @Test func concurrentAddsToAPrivateChatLetOnlyOneIn() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            var candidates: [TestUser] = []
            for index in 0..<8 { candidates.append(try await api.user("candidate\(index)")) }
            let pair = try await api.createChat("Pair", type: .private, as: alice)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for candidate in candidates {
                    group.addTask { try await api.addUser(candidate.id, to: pair.id, as: alice).status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == candidates.count - 1)
            let details = try await api.send(.get, "/chats/\(pair.id)", as: alice).decode(
                ChatPayload.self, expecting: .ok)
            #expect(details.members.count == 2)
        }
    }

    @Test func messagingAPersonOpensTheirOnePrivateChat() async throws {
        try await TestApp.run { api in
            let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
            let opened = try await api.send(.post, "/chats/private/\(bob.id)", as: alice)
            let chat = try opened.decode(ChatPayload.self, expecting: .created)
            #expect(chat.name == "alice & bob" && chat.chatType == .private && chat.creatorID == alice.id)
            #expect(Set(chat.members.map(\.userID)) == [alice.id, bob.id])
            let again = try await api.send(.post, "/chats/private/\(bob.id)", as: alice)
            #expect(try again.decode(ChatPayload.self, expecting: .ok).id == chat.id)
            let fromBob = try await api.send(.post, "/chats/private/\(alice.id)", as: bob)
            #expect(try fromBob.decode(ChatPayload.self, expecting: .ok).id == chat.id, "either side finds it")

            _ = try await api.send(.post, "/chat/remove_user/\(bob.id)/\(chat.id)", as: alice)
            let afterRemoval = try await api.send(.post, "/chats/private/\(bob.id)", as: alice)
            #expect(try afterRemoval.decode(ChatPayload.self, expecting: .created).id != chat.id, "not a chat Bob left")

            let unknown = try await api.send(.post, "/chats/private/999999", as: alice)
            #expect(unknown.status == .notFound && unknown.error?.code == "user_not_found")
            let myself = try await api.send(.post, "/chats/private/\(alice.id)", as: alice)
            #expect(myself.status == .conflict && myself.error?.code == "private_chat_with_self")
        }
    }

    @Test func messagingAPersonFromTwoDevicesAtOnceOpensOneChat() async throws {
        try await TestApp.run { api in
            let (carol, dave) = (try await api.user("carol"), try await api.user("dave"))
            let opened = try await withThrowingTaskGroup(of: (HTTPResponse.Status, ChatID).self) { group in
                for index in 0..<12 {
                    let (caller, other) = index.isMultiple(of: 2) ? (carol, dave) : (dave, carol)
                    group.addTask {
                        let response = try await api.send(.post, "/chats/private/\(other.id)", as: caller)
                        let status = response.status
                        return (status, try response.decode(ChatPayload.self, expecting: status).id)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(opened.filter { $0.0 == .created }.count == 1)
            #expect(Set(opened.map(\.1)).count == 1, "every call got the same chat")
            let chats = try await api.send(.get, "/chats", as: carol).decode([ChatSummaryPayload].self, expecting: .ok)
            #expect(chats.count == 1)
        }
    }

    @Test func theChatListShowsLastMessagesAndUnreadCounts() async throws {
        try await TestApp.run { api in
            let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
            let quiet = try await api.createChat("Quiet", as: alice)
            let pair = try await api.createChat("Pair", type: .private, as: alice)
            _ = try await api.addUser(bob.id, to: pair.id, as: alice)
            try await api.storeMessages(3, in: pair.id, from: bob.id)

            let chats = try await api.send(.get, "/chats", as: alice).decode([ChatSummaryPayload].self, expecting: .ok)
            #expect(chats.map(\.id) == [pair.id, quiet.id])
            #expect(chats[0].unreadCount == 3 && chats[0].readSeq == 0 && chats[0].lastSeq == 3)
            #expect(chats[0].lastMessage?.text == "message 3" && chats[0].lastMessage?.senderID == bob.id)
            #expect(chats[1].lastMessage == nil && chats[1].unreadCount == 0)
            #expect(chats[0].lastSenderName == "bob" && chats[1].lastSenderName == nil)
            let forBob = try await api.send(.get, "/chats", as: bob).decode([ChatSummaryPayload].self, expecting: .ok)
            #expect(forBob.map(\.id) == [pair.id] && forBob[0].unreadCount == 0)
        }
    }

    @Test func historyPagesBySeqWithOffsetsAndCursors() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let chat = try await api.createChat("Log", as: alice)
            try await api.storeMessages(250, in: chat.id, from: alice.id)
            func seqs(_ query: String) async throws -> [Int64] {
                try await api.send(.get, "/history/\(chat.id)\(query)", as: alice)
                    .decode([MessagePayload].self, expecting: .ok).map(\.seq)
            }
            #expect(try await seqs("") == Array(1...100), "default: the first 100")
            #expect(try await seqs("?limit=10&offset=240") == Array(241...250))
            #expect(try await seqs("?limit=1000") == Array(1...250))
            #expect(try await seqs("?before_seq=251&limit=5") == Array(246...250), "the latest page")
            #expect(try await seqs("?before_seq=101&limit=3") == [98, 99, 100])
            #expect(try await seqs("?after_seq=248") == [249, 250])
            #expect(try await seqs("?offset=250").isEmpty)
            let first = try await api.send(.get, "/history/\(chat.id)?limit=1", as: alice)
                .decode([MessagePayload].self, expecting: .ok)[0]
            #expect(
                first.chatID == chat.id && first.senderID == alice.id && first.clientID == "m-1"
                    && first.text == "message 1")
        }
    }

    @Test(
        "bad history parameters get 422",
        arguments: [
            ("?limit=0", "limit: must be from 1 to 1000"), ("?limit=1001", "limit: must be from 1 to 1000"),
            ("?limit=ten", "limit: must be an integer"), ("?offset=-1", "offset: must not be negative"),
            ("?before_seq=-5", "before_seq: must not be negative"),
            ("?offset=1&after_seq=2", "offset: use only one of offset, before_seq and after_seq"),
            ("?limit=99999999999999999999", "limit: must be an integer"),
        ])
    func badHistoryParameters(_ query: String, _ message: String) async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let chat = try await api.createChat("Log", as: alice)
            let response = try await api.send(.get, "/history/\(chat.id)\(query)", as: alice)
            #expect(response.status == .unprocessableContent)
            #expect(response.error?.message == message)
        }
    }

    @Test func historyShowsReadStatusPerDesign() async throws {
        try await TestApp.run { api in
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let group = try await api.createChat("Group", as: alice)
            _ = try await api.addUser(bob.id, to: group.id, as: alice)
            try await api.storeMessages(2, in: group.id, from: alice.id, prefix: "a")
            // Bob replies: his marker moves to 3, past Alice's two messages; Carol has not joined.
            try await api.storeMessages(1, in: group.id, from: bob.id, prefix: "b")
            func readFlags(_ user: TestUser) async throws -> [Bool] {
                try await api.send(.get, "/history/\(group.id)", as: user)
                    .decode([MessagePayload].self, expecting: .ok).map(\.isRead)
            }
            #expect(try await readFlags(alice) == [true, true, false], "Bob read Alice's; Alice has not read Bob's")
            // Carol joins with her marker at the end, so nothing turns unread.
            _ = try await api.addUser(carol.id, to: group.id, as: alice)
            #expect(try await readFlags(carol) == [true, true, false])
            try await api.storeMessages(1, in: group.id, from: carol.id, prefix: "c")
            #expect(try await readFlags(alice) == [true, true, false, false], "Alice has read neither reply")
        }
    }
}
