import ChatProtocol
import NIOHTTP1

/// `GET /search` over the caller's chats. The words searched for start with the run's random
/// prefix, so that nobody else's messages on a live deployment match them.
extension ConformanceSuite {
    static let searchChecks: [ConformanceCheck] = [
        ConformanceCheck(
            "search finds words in the caller's chats only, newest first, marked, a page at a time"
        ) { target in
            let (alice, bob, carol) = (
                try await target.register("alice"), try await target.register("bob"), try await target.register("carol")
            )
            let word = "\(target.prefix)lunch"
            let chat = try await target.group("lunch", of: alice, with: [bob])
            let other = try await target.createChat("elsewhere", as: alice)
            let socket = try await target.connect(alice)
            for (number, (chatID, text)) in [
                (chat.id, "\(word) at noon"), (chat.id, "nothing to find"), (other.id, "\(word) elsewhere"),
                (chat.id, "\(word) again"), (chat.id, "\(word)? \(word.uppercased())!"),
            ].enumerated() {
                socket.send(.send(chatID: chatID, clientID: "s\(number)", text: text))
                _ = try await socket.ack()
            }
            await socket.close()

            func search(_ query: String, as account: ConformanceTarget.Account) async throws -> SearchResultsPayload {
                try await target.request(.GET, "/search?q=\(word)\(query)", token: account.token)
                    .decode(SearchResultsPayload.self, expecting: 200)
            }
            let first = try await search("&limit=2", as: bob)
            try require(
                first.messages.map(\.message.text) == ["\(word)? \(word.uppercased())!", "\(word) again"],
                "bob's first page is the two newest of his chat: \(first.messages.map(\.message.text))")
            try require(
                first.messages.allSatisfy { $0.snippet.lowercased().contains("<mark>\(word)</mark>") },
                "each snippet marks the word: \(first.messages.map(\.snippet))")
            guard let next = first.next else { throw CheckFailure("a full page has a next cursor") }
            let second = try await search("&limit=2&before=\(next)", as: bob)
            try require(
                second.messages.map(\.message.text) == ["\(word) at noon"] && second.next == nil,
                "the second page is the last: \(second.messages.map(\.message.text)), next \(String(describing: second.next))"
            )
            let narrowed = try await search("&chat_id=\(other.id)", as: alice)
            try require(
                narrowed.messages.map(\.message.chatID) == [other.id], "chat_id narrows alice's search to that chat")
            try require(try await search("", as: carol).messages.isEmpty, "someone in neither chat finds nothing")
            let foreign = try await target.request(.GET, "/search?q=\(word)&chat_id=\(chat.id)", token: carol.token)
            try require(
                foreign.status == 404 && foreign.errorCode == "chat_not_found",
                "searching a chat one is not in: \(foreign.status) \(foreign.text)")
            _ = try await target.removeUser(bob, from: chat.id, as: alice).decode(ChatPayload.self, expecting: 200)
            try require(try await search("", as: bob).messages.isEmpty, "bob, removed, finds nothing in the chat")
            for query in ["&limit=0", "&limit=101", "&before=x"] {
                let refused = try await target.request(.GET, "/search?q=\(word)\(query)", token: alice.token)
                try require(
                    refused.status == 422 && refused.errorCode == "validation_failed",
                    "search?q=...\(query): \(refused.status) \(refused.text)")
            }
            let anonymous = try await target.request(.GET, "/search?q=\(word)")
            try require(anonymous.status == 401, "search without a token: \(anonymous.status)")
        }
    ]
}
