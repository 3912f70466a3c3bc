import ChatProtocol
import ChatServer
import ChatTestSupport
import Foundation
import HTTPTypes
import Testing

/// `GET /search`: results, snippets, paging, and a clear 422 for every query it cannot run.
@Suite("Searching messages over REST")
struct SearchAPITests {
    @Test func findsMarksAndPages() async throws {
        try await TestApp.run { api in
            let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
            let chat = try await api.createChat("Team", as: alice)
            _ = try await api.addUser(bob.id, to: chat.id, as: alice)
            for (index, text) in ["lunch at <b>noon</b> & then", "no", "Lunch again", "lunch? LUNCH!"].enumerated() {
                _ = try await api.store.appendMessage(
                    NewMessage(chatID: chat.id, senderID: alice.id, clientID: "l\(index)", text: text))
            }
            let first = try await api.send(.get, "/search?q=lunch&limit=2", as: bob).decode(
                SearchResultsPayload.self, expecting: .ok)
            #expect(first.messages.map(\.message.text) == ["lunch? LUNCH!", "Lunch again"], "newest first")
            #expect(first.messages.first?.snippet == "<mark>lunch</mark>? <mark>LUNCH</mark>!")
            let next = try #require(first.next, "a full page has a next cursor")
            let second = try await api.send(.get, "/search?q=lunch&limit=2&before=\(next)", as: bob).decode(
                SearchResultsPayload.self, expecting: .ok)
            #expect(second.messages.map(\.message.seq) == [1] && second.next == nil, "the last page")
            #expect(
                second.messages.first?.snippet == "<mark>lunch</mark> at &lt;b&gt;noon&lt;/b&gt; &amp; then",
                "the snippet is escaped text with marks only")
            let raw = try await api.send(.get, "/search?q=noon%20lunch&chat_id=\(chat.id)", as: bob)
            #expect(raw.status == .ok)
            let body = try #require(String(buffer: raw.body).data(using: .utf8))
            let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
            #expect(object["next"] is NSNull, "next is null on the last page")
            let message = try #require((object["messages"] as? [[String: Any]])?.first)
            #expect(message["seq"] as? Int == 1 && message["snippet"] is String && message["reply_to"] is NSNull)

            let outsider = try await api.user("carol")
            let foreign = try await api.send(.get, "/search?q=lunch&chat_id=\(chat.id)", as: outsider)
            #expect(foreign.status == .notFound && foreign.error?.code == "chat_not_found")
            let none = try await api.send(.get, "/search?q=lunch", as: outsider).decode(
                SearchResultsPayload.self, expecting: .ok)
            #expect(none.messages.isEmpty, "only the caller's chats are searched")
            #expect(try await api.send(.get, "/search?q=lunch").status == .unauthorized)
        }
    }

    @Test(arguments: [
        ("", "q"), ("%20%20", "q"), ("%26%26%7C%7C%22*(-)%3A", "q"), (String(repeating: "a", count: 201), "q"),
        ("a%20b%20c%20d%20e%20f%20g%20h%20i%20j%20k", "q"), ("lunch&limit=0", "limit"), ("lunch&limit=101", "limit"),
        ("lunch&before=0", "before"), ("lunch&before=x", "before"), ("lunch&chat_id=x", "chat_id"),
    ])
    func refusesWhatItCannotRun(query: String, field: String) async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let refused = try await api.send(.get, "/search?q=\(query)", as: alice)
            #expect(refused.status == .unprocessableContent && refused.error?.code == "validation_failed", "\(query)")
            #expect(refused.error?.message.hasPrefix(field) == true, "\(refused.error?.message ?? "")")
        }
    }
}
