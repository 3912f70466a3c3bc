import ChatConformance
import ChatProtocol
import ChatTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@Suite("Password change", .timeLimit(.minutes(5)))
struct PasswordChangeTests {
    static func change(
        _ api: APITestClient, as user: TestUser, current: String = "password123", new: String = "a-new-passphrase"
    ) async throws -> TestResponse {
        try await api.send(
            .post, "/user/password", json: ChangePasswordRequest(currentPassword: current, newPassword: new), as: user)
    }

    @Test func changingThePasswordEndsEverySessionAndClosesTheirSockets() async throws {
        try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let alice = try await api.user("alice")
            let otherDevice = try await api.logIn("alice").decode(TokenPayload.self, expecting: .ok).accessToken
            let otherSocket = try await ChatWebSocketClient.connect(port: port, token: otherDevice)

            let changed = try await Self.change(api, as: alice)
            let fresh = try changed.decode(TokenPayload.self, expecting: .ok).accessToken
            #expect(changed.headers[.setCookie]?.hasPrefix("access_token=\(fresh);") == true)
            #expect(changed.headers[.cacheControl] == "no-store")

            let close = try await otherSocket.closedByServer()
            #expect(close?.closeCode == .policyViolation, "the other device's socket closes with 1008")
            for token in [alice.token, otherDevice] {
                let old = try await api.send(.get, "/users/me", headers: [.authorization: "Bearer \(token)"])
                #expect(old.status == .unauthorized, "sessions from before the change end")
            }
            #expect(try await api.send(.get, "/users/me", headers: [.authorization: "Bearer \(fresh)"]).status == .ok)
            #expect(try await api.logIn("alice").status == .unauthorized, "the old password is gone")
            #expect(try await api.logIn("alice", password: "a-new-passphrase").status == .ok)
        }
    }

    @Test func theCurrentPasswordMustBeRightAndTheNewOneValid() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let wrong = try await Self.change(api, as: alice, current: "not-the-password")
            #expect(wrong.status == .forbidden && wrong.error?.code == "wrong_password")
            let weak = try await Self.change(api, as: alice, new: "short")
            #expect(weak.status == .unprocessableContent && weak.error?.code == "validation_failed")
            let tooLong = try await Self.change(api, as: alice, new: String(repeating: "é", count: 40))
            #expect(tooLong.status == .unprocessableContent, "over bcrypt's 72 bytes: refused, never truncated")
            #expect(try await api.send(.get, "/users/me", as: alice).status == .ok, "a refused change ends nothing")
            #expect(try await api.logIn("alice").status == .ok, "and keeps the password")
            let anonymous = try await api.send(
                .post, "/user/password", json: ChangePasswordRequest(currentPassword: "x", newPassword: "y"))
            #expect(anonymous.status == .unauthorized)
        }
    }

    @Test func guessingTheCurrentPasswordIsLimitedLikeLogIns() async throws {
        try await TestApp.run(overrides: ["CHAT_LOGIN_FAILURES_PER_ACCOUNT": "3"]) { api in
            let alice = try await api.user("alice")
            for _ in 1...3 {
                #expect(try await Self.change(api, as: alice, current: "guess").status == .forbidden)
            }
            let limited = try await Self.change(api, as: alice)
            #expect(limited.status == .tooManyRequests && limited.headers[.retryAfter] != nil)
        }
    }

    @Test func aCrossSiteCookieRequestCannotChangeIt() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let response = try await api.send(
                .post, "/user/password",
                json: ChangePasswordRequest(currentPassword: "password123", newPassword: "attacker-chosen"),
                headers: [.cookie: "access_token=\(alice.token)", .origin: "https://evil.example"])
            #expect(response.status == .forbidden && response.error?.code == "cross_site_request")
            #expect(try await api.logIn("alice").status == .ok)
        }
    }
}
