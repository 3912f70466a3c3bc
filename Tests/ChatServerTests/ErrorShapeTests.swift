import ChatProtocol
import ChatServer
import ChatTestSupport
import HTTPTypes
import HummingbirdTesting
import Testing

@Suite("Error responses")
struct ErrorShapeTests {
    @Test func unknownRoutesGetTheErrorShape() async throws {
        try await TestApp.run { api in
            for (method, uri) in [(HTTPRequest.Method.get, "/nope"), (.delete, "/user"), (.get, "/chat/add_user/1/2")] {
                let response = try await api.send(method, uri)
                #expect(response.status == .notFound && response.error?.code == "not_found", "\(method) \(uri)")
                #expect(response.headers[.contentType] == "application/json; charset=utf-8")
            }
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

    @Test func internalFailuresGetAGeneric500() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            // Pull the database out from under the server: the driver's errors must not leak.
            let store = try #require(api.store as? SQLiteChatStore)
            await store.close()
            let response = try await api.send(.get, "/users/me", as: alice)
            #expect(response.status.code >= 500)
            #expect(response.error?.code == "internal_error" || response.error?.code == "storage_unavailable")
            for leak in ["SQL", "sqlite", "SELECT", "/tmp", ".swift"] {
                #expect(!response.bodyText.contains(leak), "\(leak) in \(response.bodyText)")
            }
        }
    }
}
