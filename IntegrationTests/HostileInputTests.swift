import ChatConformance
import ChatProtocol
import ChatTestSupport
import Foundation
import HTTPTypes
import Testing

/// SQL meta-characters, control characters and other hostile text in every string field, on
/// both databases: each value is stored verbatim (after the documented trimming and Unicode
/// normalisation) or refused with 422, never a 5xx, and the data around it stays intact.
@Suite("Hostile input", .timeLimit(.minutes(5)))
struct HostileInputTests {
    static let hostile = [
        "'; DROP TABLE users; --", #"" OR "1"="1"#, "Robert'); DELETE FROM messages; --", "100% _match_ \\",
        "$1 $$ ?1 :name", "line\nbreak", "tab\there", "nul\u{0}byte", "bell\u{7}", "ansi \u{1B}[31mred",
        "\u{202E}reversed", "emoji 👋🏽 日本語", "\u{FEFF}bom", "e\u{301} decomposed", "  padded  ",
        String(repeating: "x", count: 5000),
    ]

    /// A field's canonical form as the input rules keep it: trimmed, NFC.
    static func canonical(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines).precomposedStringWithCanonicalMapping
    }

    @Test(arguments: TestDatabase.allCases)
    func everyStringFieldStoresHostileTextVerbatimOrRefusesIt(_ database: TestDatabase) async throws {
        try await TestApp.run(on: database, testing: .live) { api in
            let port = try #require(api.client.port)
            let owner = try await api.user("owner")
            let chat = try await api.createChat("Room", as: owner)
            let socket = try await ChatWebSocketClient.connect(port: port, token: owner.token)
            var storedTexts: [String] = []
            for (index, text) in Self.hostile.enumerated() {
                let user = try await api.send(
                    .post, "/user",
                    json: CreateUserRequest(name: "u\(index) \(text)", email: "u\(index)@example.com", password: text))
                #expect(
                    [201, 422].contains(user.status.code), "name/password \(text.debugDescription): \(user.status)")
                if user.status == .created {
                    let account = try user.decode(AccountPayload.self, expecting: .created)
                    #expect(account.name == Self.canonical("u\(index) \(text)"))
                }
                let email = try await api.send(
                    .post, "/user",
                    json: CreateUserRequest(name: "e\(index)", email: "\(text)@example.com", password: "password123"))
                #expect([201, 422].contains(email.status.code), "email \(text.debugDescription): \(email.status)")

                let created = try await api.send(
                    .post, "/chat", json: CreateChatRequest(name: text, chatType: .group), as: owner)
                #expect([201, 422].contains(created.status.code), "chat name \(text.debugDescription)")
                if created.status == .created {
                    #expect(try created.decode(ChatPayload.self, expecting: .created).name == Self.canonical(text))
                }

                let search = try await api.send(
                    .get, "/users?q=\(text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")",
                    as: owner)
                #expect([200, 422].contains(search.status.code), "search \(text.debugDescription): \(search.status)")
                let logIn = try await api.logIn(text, password: text)
                #expect(logIn.status == .unauthorized, "log-in \(text.debugDescription): \(logIn.status)")

                socket.send(.send(chatID: chat.id, clientID: "h\(index)", text: text))
                switch try await socket.next() {
                case .ack(_, let message, _):
                    #expect(message.text == text, "message texts are kept verbatim")
                    storedTexts.append(text)
                case .error(let code, _, _, _, _):
                    #expect(code == "validation_failed", "message \(text.debugDescription): \(code)")
                default:
                    Issue.record("unexpected frame for \(text.debugDescription)")
                }
            }
            let history = try await api.send(.get, "/history/\(chat.id)?limit=100", as: owner)
                .decode([MessagePayload].self, expecting: .ok)
            #expect(history.map(\.text) == storedTexts, "every stored text reads back the same, in order")
            #expect(try await api.logIn("owner").status == .ok, "the users table is intact")
            await socket.close()
        }
    }
}
