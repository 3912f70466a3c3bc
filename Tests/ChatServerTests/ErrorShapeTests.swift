import ChatProtocol
import ChatTestSupport
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import ChatServer

@Suite("Error responses")
struct ErrorShapeTests {
    @Test func unknownRoutesGetTheErrorShape() async throws {
        try await TestApp.run { api in
            for (method, uri) in [(HTTPRequest.Method.get, "/nope"), (.post, "/chat/1/2"), (.get, "/history")] {
                let response = try await api.send(method, uri)
                #expect(response.status == .notFound && response.error?.code == "not_found", "\(method) \(uri)")
                #expect(response.headers[.contentType] == "application/json; charset=utf-8")
            }
        }
    }

    @Test func methodsAPathDoesNotTakeAre405WithAllow() async throws {
        try await TestApp.run { api in
            for (method, uri, allow) in [
                (HTTPRequest.Method.delete, "/user", "POST"), (.get, "/chat/add_user/1/2", "POST"),
                (.put, "/history/7", "GET"), (.post, "/static/app.css", "GET"), (.patch, "/", "GET"),
            ] {
                let response = try await api.send(method, uri)
                #expect(
                    response.status == .methodNotAllowed && response.error?.code == "method_not_allowed",
                    "\(method) \(uri)")
                #expect(response.headers[.allow] == allow, "\(method) \(uri)")
            }
            // A path the method does take still says 404 for what it cannot find.
            #expect(try await api.send(.get, "/static/nope.css").status == .notFound)
        }
    }

    @Test func malformedJSONIs400() async throws {
        try await TestApp.run { api in
            for body in ["{", "not json", #"{"name":"a"} trailing"#, ""] {
                let response = try await api.sendRaw(.post, "/user", body: body, contentType: "application/json")
                #expect(response.status == .badRequest && response.error?.code == "invalid_json", "\(body)")
            }
        }
    }

    /// What JSON parsers disagree on, or choke on, gets a 400 or 422 that says so; nothing is
    /// half-accepted and the server stays up.
    @Test(arguments: [
        (#"{"name":"a","name":"b","chat_type":"GROUP"}"#, "invalid_json"),
        (#"{"name":"a","n\u0061me":"b","chat_type":"GROUP"}"#, "invalid_json"),
        (#"{"name":"a","chat_type":"GROUP"} {"name":"b"}"#, "invalid_json"),
        (#"{"name":NaN,"chat_type":"GROUP"}"#, "invalid_json"),
        (#"{"name":1e999999,"chat_type":"GROUP"}"#, "validation_failed"),
        (#"{"name":123456789012345678901234567890,"chat_type":"GROUP"}"#, "validation_failed"),
        (String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000), "invalid_json"),
        (String(repeating: #"{"a":"#, count: 5_000) + "1" + String(repeating: "}", count: 5_000), "invalid_json"),
    ])
    func jsonEdgeCasesGetAClearError(body: String, code: String) async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let response = try await api.sendRaw(.post, "/chat", body: body, contentType: "application/json", as: alice)
            #expect(response.error?.code == code, "\(body.prefix(60)): \(response.bodyText)")
            #expect([400, 422].contains(response.status.code))
            #expect(
                try await api.send(.get, "/chats", as: alice).decode([ChatSummaryPayload].self, expecting: .ok).isEmpty)
        }
    }

    @Test func formsRepeatingAFieldAre400() async throws {
        try await TestApp.run { api in
            try await api.register("alice")
            for body in ["username=alice&username=bob&password=password123", "a=1&a=2&username=alice&password=x"] {
                let response = try await api.sendRaw(
                    .post, "/auth/login", body: body, contentType: "application/x-www-form-urlencoded")
                #expect(response.status == .badRequest && response.error?.code == "invalid_form", "\(body)")
            }
        }
    }

    @Test func formFieldsAreReadLiterallyAndUnknownOnesIgnored() async throws {
        try await TestApp.run { api in
            try await api.register("alice", password: "pass word+1")
            let body = "=x&a[b]=1&l%09=2&scope=&username=alice&password=pass+word%2B1&grant_type=password"
            let response = try await api.sendRaw(
                .post, "/auth/login", body: body, contentType: "application/x-www-form-urlencoded")
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let missing = try await api.sendRaw(
                .post, "/auth/login", body: "username=alice", contentType: "application/x-www-form-urlencoded")
            #expect(missing.status == .unprocessableContent && missing.error?.code == "validation_failed")
        }
    }

    @Test func keysRepeatedInDifferentObjectsAreFine() {
        #expect(
            DuplicateKeyCheck.firstDuplicate(in: Array(#"{"a":{"x":1},"b":[{"x":2},{"x":3}],"x":"x"}"#.utf8)) == nil)
        #expect(DuplicateKeyCheck.firstDuplicate(in: Array(#"{"a":""x":1,","a":2}"#.utf8)) == "a")
        #expect(DuplicateKeyCheck.firstDuplicate(in: Array(#"[{"k":1,"k":2}]"#.utf8)) == "k")
        #expect(DuplicateKeyCheck.firstDuplicate(in: Array(#"{"a":{"k":1,"k":2}}"#.utf8)) == "k")
        #expect(DuplicateKeyCheck.firstDuplicate(in: Array(#"{"k":"v","v":"k"}"#.utf8)) == nil)
    }

    @Test func wrongContentTypesAre415() async throws {
        try await TestApp.run { api in
            for contentType in ["text/plain", "application/x-www-form-urlencoded", nil] {
                let response = try await api.sendRaw(
                    .post, "/user", body: #"{"name":"a","email":"a@b.co","password":"password123"}"#,
                    contentType: contentType)
                #expect(response.status == .unsupportedMediaType && response.error?.code == "unsupported_media_type")
            }
            let withCharset = try await api.sendRaw(
                .post, "/user", body: #"{"name":"a","email":"a@b.co","password":"password123"}"#,
                contentType: "application/json; charset=utf-8")
            #expect(withCharset.status == .created)
        }
    }

    @Test func oversizedBodiesAre413() async throws {
        try await TestApp.run(overrides: ["CHAT_MAX_BODY_BYTES": "2048"]) { api in
            let big = #"{"name":"a","email":"a@b.co","password":""# + String(repeating: "x", count: 4000) + #""}"#
            let response = try await api.sendRaw(.post, "/user", body: big, contentType: "application/json")
            #expect(response.status == .contentTooLarge && response.error?.code == "body_too_large")
        }
    }

    @Test func aClosedDatabaseIsA503WithoutDetails() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            // Pull the database out from under the server: a closed store says it is
            // unavailable (it once answered with SQLite's "misuse" as a 500), and the
            // driver's errors must not leak.
            let store = try #require(api.store as? SQLiteChatStore)
            await store.close()
            let response = try await api.send(.get, "/users/me", as: alice)
            #expect(response.status == .serviceUnavailable && response.error?.code == "storage_unavailable")
            for leak in ["SQL", "sqlite", "SELECT", "/tmp", ".swift"] {
                #expect(!response.bodyText.contains(leak), "\(leak) in \(response.bodyText)")
            }
        }
    }
}
