import ChatProtocol
import NIOHTTP1

/// The chat paths of the REST API beyond membership: creating and listing chats, the private
/// chat of two users, membership events, the input limits, and the administrators' path.
extension ConformanceSuite {
    static let chatChecks: [ConformanceCheck] = [
        ConformanceCheck(
            "a new chat has its creator as first member; only members see it, its history and its page"
        ) { target in
            let (alice, carol) = (try await target.register("alice"), try await target.register("carol"))
            let chat = try await target.createChat("team", as: alice)
            try require(
                chat.chatType == .group && chat.creatorID == alice.id && chat.members.map(\.userID) == [alice.id]
                    && chat.lastSeq == 0, "201 with the creator as the only member: \(chat)")
            let wrongType = try await target.request(
                .POST, "/chat", json: ["name": "wrong", "chat_type": "CROWD"], token: alice.token)
            try require(
                wrongType.status == 422 && wrongType.errorCode == ErrorCode.validationFailed.rawValue,
                "an unknown chat_type: \(wrongType.status) \(wrongType.text)")
            try requireOneErrorShape(wrongType)
            let anonymous = try await target.request(
                .POST, "/chat", json: CreateChatRequest(name: "x", chatType: .group))
            try require(anonymous.status == 401, "creating a chat without a token: \(anonymous.status)")
            try requireOneErrorShape(anonymous)

            let listed = try await target.request(.GET, "/chats", token: alice.token)
                .decode([ChatSummaryPayload].self, expecting: 200)
            try require(listed.map(\.id).contains(chat.id), "GET /chats lists it for its creator")
            let notListed = try await target.request(.GET, "/chats", token: carol.token)
                .decode([ChatSummaryPayload].self, expecting: 200)
            try require(!notListed.map(\.id).contains(chat.id), "and not for someone outside it")
            let details = try await target.request(.GET, "/chats/\(chat.id)", token: alice.token)
                .decode(ChatPayload.self, expecting: 200)
            try require(details.id == chat.id && details.members == chat.members, "GET /chats/{id}: \(details)")
            for path in ["/chats/\(chat.id)", "/history/\(chat.id)", "/chats/\(chat.id)/membership-events"] {
                let refused = try await target.request(.GET, path, token: carol.token)
                try require(
                    refused.status == 404 && refused.errorCode == ErrorCode.chatNotFound.rawValue,
                    "\(path) for someone outside the chat: \(refused.status) \(refused.text)")
            }
            let page = try await target.request(
                .GET, "/chat/\(chat.id)", headers: [("Cookie", "access_token=\(alice.token)")])
            try require(
                page.status == 200 && page.headers["Content-Type"].first?.hasPrefix("text/html") == true,
                "the chat's page for a member: \(page.status) \(page.headers["Content-Type"])")
            let foreignPage = try await target.request(
                .GET, "/chat/\(chat.id)", headers: [("Cookie", "access_token=\(carol.token)")])
            try require(foreignPage.status == 404, "the chat's page for someone outside it: \(foreignPage.status)")
        },
        ConformanceCheck("a private chat of two users is one chat, whoever opens it") { target in
            let (alice, bob) = (try await target.register("alice"), try await target.register("bob"))
            let opened = try await target.request(.POST, "/chats/private/\(bob.id)", token: alice.token)
                .decode(ChatPayload.self, expecting: 201)
            try require(
                opened.chatType == .private && Set(opened.members.map(\.userID)) == [alice.id, bob.id],
                "alice opens it with both members: \(opened)")
            let again = try await target.request(.POST, "/chats/private/\(bob.id)", token: alice.token)
                .decode(ChatPayload.self, expecting: 200)
            let fromBob = try await target.request(.POST, "/chats/private/\(alice.id)", token: bob.token)
                .decode(ChatPayload.self, expecting: 200)
            try require(again.id == opened.id && fromBob.id == opened.id, "again, from either side, the same chat")
            let withSelf = try await target.request(.POST, "/chats/private/\(alice.id)", token: alice.token)
            try require(
                withSelf.errorCode == ErrorCode.privateChatWithSelf.rawValue,
                "with oneself: \(withSelf.status) \(withSelf.text)")
        },
        ConformanceCheck("membership events say who added and removed whom, after which message") { target in
            let (alice, bob, carol) = (
                try await target.register("alice"), try await target.register("bob"), try await target.register("carol")
            )
            let chat = try await target.group("events", of: alice, with: [bob])
            let socket = try await target.connect(alice)
            _ = try await target.store(2, in: chat.id, on: socket)
            await socket.close()
            _ = try await target.addUser(carol, to: chat.id, as: alice).decode(ChatPayload.self, expecting: 200)
            _ = try await target.removeUser(bob, from: chat.id, as: alice).decode(ChatPayload.self, expecting: 200)
            let events = try await target.request(.GET, "/chats/\(chat.id)/membership-events", token: carol.token)
                .decode([MembershipEventPayload].self, expecting: 200)
            let seen = events.filter { $0.userID != alice.id }.map {
                "\($0.type.rawValue) \($0.userName) \($0.afterSeq)"
            }
            try require(
                seen == [
                    "member_added \(bob.name) 0", "member_added \(carol.name) 2", "member_removed \(bob.name) 2",
                ], "the events in order: \(seen)")
            try require(
                events.allSatisfy { $0.userID == alice.id || $0.actorID == alice.id }, "each names alice as the actor")
            try require(events.map(\.id) == events.map(\.id).sorted(), "ids increase in the order they happened")
        },
        ConformanceCheck("GET /limits states the input limits the server enforces") { target in
            let alice = try await target.register("alice")
            let limits = try await target.request(.GET, "/limits", token: alice.token)
                .decode(InputLimits.self, expecting: 200)
            let longest = String(repeating: "n", count: limits.maxChatNameLength)
            _ = try await target.request(
                .POST, "/chat", json: CreateChatRequest(name: longest, chatType: .group), token: alice.token
            ).decode(ChatPayload.self, expecting: 201)
            let tooLong = try await target.request(
                .POST, "/chat", json: CreateChatRequest(name: longest + "n", chatType: .group), token: alice.token)
            try require(
                tooLong.status == 422 && tooLong.errorCode == ErrorCode.validationFailed.rawValue,
                "a chat name one past max_chat_name_length: \(tooLong.status) \(tooLong.text)")
            let chat = try await target.createChat("limits", as: alice)
            let socket = try await target.connect(alice)
            let text = String(repeating: "m", count: limits.maxMessageLength)
            socket.send(.send(chatID: chat.id, clientID: "longest", text: text))
            try require(try await socket.ack().message.text == text, "a message of max_message_length is stored")
            socket.send(.send(chatID: chat.id, clientID: "too-long", text: text + "m"))
            let refused = try await socket.next(.error)
            try require(
                refused.errorCode == ErrorCode.validationFailed.rawValue,
                "a message one past max_message_length: \(refused)")
            await socket.close()
        },
        ConformanceCheck(
            "a user gets 403 admin_only for the administrators' resync, and finds users by the start of their name"
        ) { target in
            let alice = try await target.register("alice")
            let refused = try await target.request(.GET, "/chat/sync/persistent", token: alice.token)
            try require(
                refused.status == 403 && refused.errorCode == ErrorCode.adminOnly.rawValue,
                "GET /chat/sync/persistent as a user: \(refused.status) \(refused.text)")
            try requireOneErrorShape(refused)
            let found = try await target.request(.GET, "/users?q=\(target.prefix)-alice&limit=50", token: alice.token)
                .decode([UserPayload].self, expecting: 200)
            try require(
                found.contains(UserPayload(id: alice.id, name: alice.name))
                    && found.allSatisfy { $0.name.hasPrefix("\(target.prefix)-alice") },
                "GET /users?q= finds users by the start of their name: \(found.map(\.name))")
        },
    ]
}
