import ChatProtocol
import Foundation
import NIOHTTP1

extension ConformanceSuite {
    static let accountChecks: [ConformanceCheck] = [
        ConformanceCheck("an account registers once: a taken name gets 409 name_taken in the one error shape") {
            target in
            let account = try await target.register("alice")
            let again = try await target.request(
                .POST, "/user",
                json: CreateUserRequest(
                    name: account.name, email: "other-\(account.name)@conformance.invalid",
                    password: "conformance-password"))
            try require(
                again.status == 409 && again.errorCode == "name_taken",
                "registering again: \(again.status) \(again.text)")
            try requireOneErrorShape(again)
            let me = try await target.request(.GET, "/users/me", token: account.token).decode(
                AccountPayload.self, expecting: 200)
            try require(me.id == account.id && me.name == account.name, "/users/me names the account: \(me)")
        },
        ConformanceCheck("log-in by form gives a token that works as a Bearer header and as the HttpOnly cookie") {
            target in
            let account = try await target.register("bob")
            let login = try await target.logIn(account.name, password: account.password)
            let token = try login.decode(TokenPayload.self, expecting: 200)
            try require(token.tokenType.lowercased() == "bearer", "token_type is bearer: \(token.tokenType)")
            let cookie = login.headers["Set-Cookie"].first { $0.hasPrefix("access_token=") }
            try require(
                cookie?.contains("HttpOnly") == true, "log-in sets the access_token cookie, HttpOnly: \(login.headers)")
            let byBearer = try await target.request(.GET, "/users/me", token: token.accessToken)
            try require(byBearer.status == 200, "the token as a Bearer header: \(byBearer.status)")
            let byCookie = try await target.request(
                .GET, "/users/me", headers: [("Cookie", "access_token=\(token.accessToken)")])
            try require(byCookie.status == 200, "the token as the cookie: \(byCookie.status) \(byCookie.text)")
            let wrong = try await target.logIn(account.name, password: "not-the-password")
            try require(
                wrong.status == 401 && wrong.errorCode == "invalid_credentials",
                "a wrong password: \(wrong.status) \(wrong.text)")
            let anonymous = try await target.request(.GET, "/users/me")
            try require(
                anonymous.status == 401 && anonymous.errorCode == "not_authenticated", "no token: \(anonymous.status)")
        },
        ConformanceCheck("logging out revokes the token") { target in
            let account = try await target.register("carol")
            let logout = try await target.request(.POST, "/auth/logout", token: account.token)
            try require(logout.status == 204, "logout answers 204: \(logout.status) \(logout.text)")
            let after = try await target.request(.GET, "/users/me", token: account.token)
            try require(
                after.status == 401 && after.errorCode == "not_authenticated", "the token after logout: \(after.status)"
            )
        },
        ConformanceCheck("a password change revokes every older token and the new password logs in") { target in
            let account = try await target.register("dave")
            let other = try await target.logIn(account.name, password: account.password)
                .decode(TokenPayload.self, expecting: 200).accessToken
            let newPassword = "conformance-password-2"
            let changed = try await target.request(
                .POST, "/user/password",
                json: ChangePasswordRequest(currentPassword: account.password, newPassword: newPassword),
                token: account.token)
            let fresh = try changed.decode(TokenPayload.self, expecting: 200).accessToken
            for old in [account.token, other] {
                let refused = try await target.request(.GET, "/users/me", token: old)
                try require(refused.status == 401, "an older token after the change: \(refused.status)")
            }
            let withFresh = try await target.request(.GET, "/users/me", token: fresh)
            try require(withFresh.status == 200, "the token the change returned: \(withFresh.status)")
            let oldLogin = try await target.logIn(account.name, password: account.password)
            try require(oldLogin.status == 401, "the old password: \(oldLogin.status)")
            _ = try await target.logIn(account.name, password: newPassword).decode(TokenPayload.self, expecting: 200)
        },
    ]

    /// Fails unless the body is exactly `{"error": {"code": "...", "message": "..."}}`.
    static func requireOneErrorShape(_ reply: ConformanceTarget.Reply) throws {
        let body = try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any]
        let error = body?["error"] as? [String: Any]
        try require(
            body?.count == 1 && error.map { Set($0.keys) == ["code", "message"] } == true
                && error?["code"] is String && error?["message"] is String,
            "the error body has the one shape {\"error\": {\"code\", \"message\"}}: \(reply.text)")
    }
}
