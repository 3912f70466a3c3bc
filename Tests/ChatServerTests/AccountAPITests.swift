import ChatProtocol
import ChatServer
import ChatTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Accounts and sessions API")
struct AccountAPITests {
    @Test func registrationReturnsTheAccountWithoutTheHash() async throws {
        try await TestApp.run { api in
            let response = try await api.send(
                .post, "/user",
                json: CreateUserRequest(name: " Alice ", email: "Alice@Example.com", password: "password123"))
            let account = try response.decode(AccountPayload.self, expecting: .created)
            #expect(account.name == "Alice" && account.email == "Alice@Example.com" && !account.isAdmin)
            #expect(!response.bodyText.contains("password") && !response.bodyText.contains("$2b$"))
        }
    }

    @Test(
        "invalid registrations get 422 naming the field",
        arguments: [
            (#"{"email":"a@example.com","password":"password123"}"#, "name: is required"),
            (#"{"name":"","email":"a@example.com","password":"password123"}"#, "name: must not be empty"),
            (#"{"name":"a@b","email":"a@example.com","password":"password123"}"#, "name: must not contain '@'"),
            (
                #"{"name":"alice","email":"not-an-email","password":"password123"}"#,
                "email: is not a valid email address"
            ),
            (
                #"{"name":"alice","email":"a@example.com","password":"short"}"#,
                "password: must be at least 8 characters long"
            ),
            (#"{"name":"alice","email":"a@example.com","password":12345678}"#, "password: must be a string"),
            (#"{"name":null,"email":"a@example.com","password":"password123"}"#, "name: must not be null"),
        ])
    func invalidRegistrations(_ body: String, _ message: String) async throws {
        try await TestApp.run { api in
            let response = try await api.sendRaw(.post, "/user", body: body, contentType: "application/json")
            #expect(response.status == .unprocessableContent)
            #expect(response.error == ErrorPayload.Detail(code: "validation_failed", message: message))
        }
    }

    @Test func theLimitsAFormChecksAreTheOnesTheServerEnforces() async throws {
        try await TestApp.run(overrides: ["CHAT_MAX_MESSAGE_LENGTH": "20", "CHAT_PASSWORD_MIN_LENGTH": "10"]) { api in
            let limits = try await api.send(.get, "/limits").decode(InputLimits.self, expecting: .ok)
            #expect(
                limits
                    == InputLimits(
                        maxMessageLength: 20, maxUserNameLength: 50, maxEmailLength: 254, maxChatNameLength: 100,
                        minPasswordLength: 10, maxPasswordBytes: 72))
            let justShort = String(repeating: "p", count: limits.minPasswordLength - 1)
            let refused = try await api.send(
                .post, "/user", json: CreateUserRequest(name: "alice", email: "a@example.com", password: justShort))
            #expect(refused.status == .unprocessableContent)
            let longName = String(repeating: "n", count: limits.maxUserNameLength + 1)
            let refusedName = try await api.send(
                .post, "/user", json: CreateUserRequest(name: longName, email: "a@example.com", password: "password123")
            )
            #expect(refusedName.status == .unprocessableContent)
            let longest = String(repeating: "n", count: limits.maxUserNameLength)
            let taken = try await api.send(
                .post, "/user", json: CreateUserRequest(name: longest, email: "a@example.com", password: "password123"))
            #expect(taken.status == .created)
        }
    }

    @Test func passwordsLongerThanBcryptAllowsAreRefusedNotTruncated() async throws {
        try await TestApp.run { api in
            let response = try await api.send(
                .post, "/user",
                json: CreateUserRequest(
                    name: "long", email: "long@example.com", password: String(repeating: "p", count: 73)))
            #expect(response.status == .unprocessableContent)
            #expect(response.error?.message == "password: must be at most 72 bytes long in UTF-8")
        }
    }

    @Test func namesAndEmailsAreUniqueIgnoringCase() async throws {
        try await TestApp.run { api in
            try await api.register("Sergey", email: "sergey@example.com")
            let sameName = try await api.send(
                .post, "/user", json: CreateUserRequest(name: "SERGEY", email: "x@example.com", password: "password123")
            )
            #expect(sameName.status == .conflict && sameName.error?.code == "name_taken")
            let sameEmail = try await api.send(
                .post, "/user",
                json: CreateUserRequest(name: "Other", email: "Sergey@EXAMPLE.com", password: "password123"))
            #expect(sameEmail.status == .conflict && sameEmail.error?.code == "email_taken")
        }
    }

    @Test func logInSetsAnHttpOnlyCookieAndReturnsABearerToken() async throws {
        try await TestApp.run { api in
            try await api.register("alice")
            let response = try await api.logIn("ALICE@example.com")
            let token = try response.decode(TokenPayload.self, expecting: .ok)
            #expect(token.tokenType == "bearer" && token.expiresIn == 86_400)
            let cookie = try #require(response.headers[.setCookie])
            #expect(cookie.hasPrefix("access_token=\(token.accessToken);"))
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"))
            #expect(!cookie.contains("Secure"))
        }
    }

    @Test func theCookieIsSecureWhenConfigured() async throws {
        try await TestApp.run(overrides: ["CHAT_COOKIE_SECURE": "true"]) { api in
            try await api.register("alice")
            #expect(try await api.logIn("alice").headers[.setCookie]?.contains("Secure") == true)
        }
    }

    @Test func passwordsMatchWhateverUnicodeFormTheyAreTypedIn() async throws {
        try await TestApp.run { api in
            try await api.register("amelie", password: "cafe\u{301}-au-lait")
            #expect(
                try await api.logIn("amelie", password: "caf\u{E9}-au-lait").status == .ok, "NFD at sign-up, NFC now")
            #expect(try await api.logIn("amelie", password: "cafe-au-lait").status == .unauthorized)
        }
    }

    @Test func unknownUsersAndWrongPasswordsGetTheSameAnswer() async throws {
        try await TestApp.run { api in
            try await api.register("alice")
            let wrongPassword = try await api.logIn("alice", password: "wrong-password")
            let unknownUser = try await api.logIn("nobody", password: "wrong-password")
            #expect(wrongPassword.status == .unauthorized && unknownUser.status == .unauthorized)
            #expect(wrongPassword.bodyText == unknownUser.bodyText)
            #expect(wrongPassword.error?.code == "invalid_credentials")
            #expect(wrongPassword.headers[.setCookie] == nil)
        }
    }

    @Test func logInNeedsTheOAuth2Form() async throws {
        try await TestApp.run { api in
            try await api.register("alice")
            let json = try await api.sendRaw(
                .post, "/auth/login", body: #"{"username":"alice","password":"password123"}"#,
                contentType: "application/json")
            #expect(json.status == .unsupportedMediaType && json.error?.code == "unsupported_media_type")
            let missing = try await api.sendRaw(
                .post, "/auth/login", body: "username=alice", contentType: "application/x-www-form-urlencoded")
            #expect(missing.status == .unprocessableContent && missing.error?.message == "password: is required")
            let grant = try await api.sendRaw(
                .post, "/auth/login", body: "grant_type=client_credentials&username=alice&password=password123",
                contentType: "application/x-www-form-urlencoded")
            #expect(grant.status == .badRequest && grant.error?.code == "unsupported_grant_type")
        }
    }

    @Test func theCookieAndTheBearerHeaderBothAuthenticate() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let byHeader = try await api.send(.get, "/users/me", as: alice)
            #expect(try byHeader.decode(AccountPayload.self, expecting: .ok).id == alice.id)
            let byCookie = try await api.send(.get, "/users/me", headers: [.cookie: "access_token=\(alice.token)"])
            #expect(try byCookie.decode(AccountPayload.self, expecting: .ok).id == alice.id)
        }
    }

    @Test(
        "requests without a valid token get 401",
        arguments: [
            HTTPFields(), [.authorization: "Bearer"], [.authorization: "Basic YWxpY2U6cGFzcw=="],
            [.authorization: "Bearer not.a.token"], [.cookie: "access_token=garbage"],
        ])
    func missingOrInvalidTokens(_ headers: HTTPFields) async throws {
        try await TestApp.run { api in
            let response = try await api.send(.get, "/users/me", headers: headers)
            #expect(response.status == .unauthorized)
            #expect(response.error?.code == "not_authenticated")
            #expect(response.headers[.wwwAuthenticate] == "Bearer")
        }
    }

    @Test func logOutClearsTheCookieAndRevokesTheToken() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            let second = try await api.logIn("alice").decode(TokenPayload.self, expecting: .ok).accessToken
            let logout = try await api.send(.post, "/auth/logout", headers: [.cookie: "access_token=\(alice.token)"])
            #expect(logout.status == .noContent)
            #expect(logout.headers[.setCookie]?.hasPrefix("access_token=;") == true)
            #expect(logout.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await api.send(.get, "/users/me", as: alice).status == .unauthorized, "bearer use of the token")
            #expect(
                try await api.send(.get, "/users/me", headers: [.cookie: "access_token=\(alice.token)"]).status
                    == .unauthorized, "cookie use of the token")
            #expect(
                try await api.send(.get, "/users/me", headers: [.authorization: "Bearer \(second)"]).status == .ok,
                "other sessions continue")
        }
    }

    @Test func hashesAreUpgradedAtLogInAfterTheAlgorithmChanges() async throws {
        try await TestApp.run(overrides: ["CHAT_PASSWORD_HASH": "pbkdf2-sha256"]) { api in
            let account = try await api.register("alice")
            let before = try #require(try await api.store.credentials(loginKey: "alice")).passwordHash
            #expect(before.hasPrefix("$pbkdf2-sha256$"))
            // The same database, now served with bcrypt: the old hash still verifies and is upgraded.
            let hasher = PasswordHasher(algorithm: .bcrypt, bcryptCost: 4, pbkdf2Iterations: 1000)
            let tokens = await TokenService(secret: String(repeating: "s", count: 32), lifetime: .seconds(60))
            let accounts = try await AccountService(
                store: api.store, hasher: hasher, tokens: tokens, rules: InputRules(), logger: .init(label: "test"))
            let (user, _) = try await accounts.logIn(login: "alice", password: "password123")
            #expect(user.id == account.id)
            let after = try #require(try await api.store.credentials(loginKey: "alice")).passwordHash
            #expect(after.hasPrefix("$2b$04$"))
            _ = try await accounts.logIn(login: "alice", password: "password123")
        }
    }

    @Test func usersAreFoundByNamePrefixWithoutEmails() async throws {
        try await TestApp.run { api in
            let alice = try await api.user("alice")
            for name in ["Alina", "albert", "bob"] { try await api.register(name) }
            let response = try await api.send(.get, "/users?q=AL&limit=2", as: alice)
            let users = try response.decode([UserPayload].self, expecting: .ok)
            #expect(users.map(\.name) == ["albert", "alice"])
            #expect(!response.bodyText.contains("email"))
            let badLimit = try await api.send(.get, "/users?q=a&limit=500", as: alice)
            #expect(
                badLimit.status == .unprocessableContent && badLimit.error?.message == "limit: must be from 1 to 50")
            let notANumber = try await api.send(.get, "/users?limit=ten", as: alice)
            #expect(notANumber.error?.message == "limit: must be an integer")
        }
    }

    @Test func cookieRequestsFromOtherSitesAreRefused() async throws {
        try await TestApp.run(overrides: ["CHAT_ALLOWED_ORIGINS": "https://app.example.com"]) { api in
            let alice = try await api.user("alice")
            let cookie: HTTPFields = [.cookie: "access_token=\(alice.token)", .contentType: "application/json"]
            let body = CreateChatRequest(name: "x", chatType: .group)
            func create(_ extra: HTTPFields) async throws -> TestResponse {
                var headers = cookie
                headers.append(contentsOf: extra)
                return try await api.send(.post, "/chat", json: body, headers: headers)
            }
            let evil = try await create([.origin: "https://evil.example"])
            #expect(evil.status == .forbidden && evil.error?.code == "cross_site_request")
            let crossSite = try await create([HTTPField.Name("Sec-Fetch-Site")!: "cross-site"])
            #expect(crossSite.status == .forbidden)
            #expect(try await create([.origin: "http://localhost"]).status == .created, "the server's own origin")
            #expect(try await create([.origin: "https://app.example.com"]).status == .created, "an allowed origin")
            #expect(try await create([:]).status == .created, "no Origin: not a browser")
            let bearer = try await api.send(
                .post, "/chat", json: body, as: alice, headers: [.origin: "https://evil.example"])
            #expect(bearer.status == .created, "bearer tokens are not sent by browsers on their own")
            #expect(
                try await api.send(
                    .get, "/chats", headers: [.cookie: "access_token=\(alice.token)", .origin: "https://evil.example"]
                ).status == .ok, "reads are not state changes")
        }
    }
}
