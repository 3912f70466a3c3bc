import ChatConformance
import ChatProtocol
import ChatServer
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore

/// A logged-in test user.
public struct TestUser: Sendable {
    public let id: UserID
    public let name: String
    public let token: String

    /// `Authorization: Bearer <token>`.
    public var headers: HTTPFields { [.authorization: "Bearer \(token)"] }
}

/// Typed calls to the REST API for tests, over any Hummingbird test client.
public struct APITestClient: Sendable {
    public let client: any TestClientProtocol
    /// The store behind the application, for setting up data the API cannot (bulk messages).
    public let store: any ChatStore
    /// Where the store keeps its data, for tools that open it themselves (`chatsim history`).
    public let database: DatabaseLocation

    public init(client: any TestClientProtocol, store: any ChatStore, database: DatabaseLocation) {
        self.client = client
        self.store = store
        self.database = database
    }

    /// Sends a request with an optional JSON body.
    public func send(
        _ method: HTTPRequest.Method, _ uri: String, json: (any Encodable)? = nil, as user: TestUser? = nil,
        headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = headers
        if let user, headers[.authorization] == nil, headers[.cookie] == nil {
            headers.append(contentsOf: user.headers)
        }
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(bytes: try JSONEncoder().encode(json))
            if headers[.contentType] == nil { headers[.contentType] = "application/json" }
        }
        return try await client.executeRequest(uri: uri, method: method, headers: headers, body: body)
    }

    /// Sends a raw body with the given content type.
    public func sendRaw(
        _ method: HTTPRequest.Method, _ uri: String, body: String, contentType: String?, as user: TestUser? = nil,
        headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = headers
        headers.append(contentsOf: user?.headers ?? [:])
        if let contentType { headers[.contentType] = contentType }
        return try await client.executeRequest(
            uri: uri, method: method, headers: headers, body: ByteBuffer(string: body))
    }

    /// Polls `GET /health/ready` until it answers 200 (within ``Patience/wait``).
    public func waitUntilReady() async throws {
        _ = try await readiness { $0.status == .ok }
    }

    /// Polls `GET /health/ready` until its answer satisfies `condition` (within
    /// ``Patience/wait``), and returns that answer.
    public func readiness(until condition: (TestResponse) -> Bool) async throws -> TestResponse {
        let deadline = ContinuousClock.now + Patience.wait
        while true {
            let answer = try await send(.get, "/health/ready")
            if condition(answer) { return answer }
            guard ContinuousClock.now < deadline else {
                throw UnexpectedResponse(
                    description: "readiness never as expected: \(answer.status) \(answer.bodyText)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Polls `GET /metrics` until its text satisfies `condition` (within ``Patience/wait``), and
    /// returns that text: for what the server records a moment after the event a test saw.
    public func metrics(until condition: (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + Patience.wait
        while true {
            let text = try await send(.get, "/metrics").bodyText
            if condition(text) { return text }
            guard ContinuousClock.now < deadline else {
                throw UnexpectedResponse(description: "metrics never:\n\(text)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Registers a user (expecting 201).
    @discardableResult
    public func register(
        _ name: String, email: String? = nil, password: String = "password123"
    ) async throws
        -> AccountPayload
    {
        let request = CreateUserRequest(
            name: name, email: email ?? "\(name.lowercased())@example.com", password: password)
        return try await send(.post, "/user", json: request).decode(AccountPayload.self, expecting: .created)
    }

    /// Logs in with the password grant form and returns the response.
    public func logIn(
        _ login: String, password: String = "password123", headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        let form = "grant_type=password&username=\(Self.formEncoded(login))&password=\(Self.formEncoded(password))"
        return try await sendRaw(
            .post, "/auth/login", body: form, contentType: "application/x-www-form-urlencoded", headers: headers)
    }

    /// Registers a user and logs them in.
    public func user(_ name: String, password: String = "password123") async throws -> TestUser {
        let account = try await register(name, password: password)
        let token = try await logIn(name, password: password).decode(TokenPayload.self, expecting: .ok)
        return TestUser(id: account.id, name: account.name, token: token.accessToken)
    }

    /// A user created in the store, with a session token signed with the test secret, without
    /// a request: for tests whose server may already have closed the test client's connection
    /// (a short request-head deadline on a busy machine).
    public func storedUser(_ name: String) async throws -> TestUser {
        let user = try await store.createUser(
            NewUser(name: name, email: "\(name.lowercased())@example.com", passwordHash: "not used"))
        let token = try await TokenService(secret: TestApp.jwtSecret, lifetime: .seconds(3600)).issue(for: user.id)
        return TestUser(id: user.id, name: user.name, token: token.token)
    }

    /// Creates a chat (expecting 201).
    public func createChat(_ name: String, type: ChatType = .group, as user: TestUser) async throws -> ChatPayload {
        try await send(.post, "/chat", json: CreateChatRequest(name: name, chatType: type), as: user)
            .decode(ChatPayload.self, expecting: .created)
    }

    /// `POST /chat/add_user/{user}/{chat}` as `actor`.
    public func addUser(_ user: UserID, to chat: ChatID, as actor: TestUser) async throws -> TestResponse {
        try await send(.post, "/chat/add_user/\(user)/\(chat)", as: actor)
    }

    /// `POST /chat/remove_user/{user}/{chat}` as `actor`.
    public func removeUser(_ user: UserID, from chat: ChatID, as actor: TestUser) async throws -> TestResponse {
        try await send(.post, "/chat/remove_user/\(user)/\(chat)", as: actor)
    }

    /// `POST /chat/leave/{chat}` as `member`.
    public func leave(_ chat: ChatID, as member: TestUser) async throws -> TestResponse {
        try await send(.post, "/chat/leave/\(chat)", as: member)
    }

    /// `PATCH /messages/{message}` with the new text, as `actor`.
    public func editMessage(_ message: MessageID, text: String, as actor: TestUser) async throws -> TestResponse {
        try await send(.patch, "/messages/\(message)", json: EditMessageRequest(text: text), as: actor)
    }

    /// `DELETE /messages/{message}` as `actor`.
    public func deleteMessage(_ message: MessageID, as actor: TestUser) async throws -> TestResponse {
        try await send(.delete, "/messages/\(message)", as: actor)
    }

    /// Stores messages directly (the REST API has no send; WebSocket does): `count` messages
    /// from `sender`, with client ids `<prefix>-1`, `<prefix>-2`, ...
    @discardableResult
    public func storeMessages(
        _ count: Int, in chat: ChatID, from sender: UserID, prefix: String = "m"
    ) async throws
        -> [Message]
    {
        var messages: [Message] = []
        for index in 1...count {
            let appended = try await store.appendMessage(
                NewMessage(chatID: chat, senderID: sender, clientID: "\(prefix)-\(index)", text: "message \(index)"))
            messages.append(appended.message)
        }
        return messages
    }

    private static func formEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// A response that was not what a test expected; its description shows the body.
public struct UnexpectedResponse: Error, CustomStringConvertible {
    public let description: String
}

extension TestResponse {
    /// Decodes the JSON body after checking the status.
    public func decode<T: Decodable>(_ type: T.Type, expecting status: HTTPResponse.Status) throws -> T {
        guard self.status == status else {
            throw UnexpectedResponse(description: "expected \(status), got \(self.status): \(bodyText)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw UnexpectedResponse(description: "cannot decode \(T.self) from \(bodyText): \(error)")
        }
    }

    /// The body decoded as the API's error shape, if it is one.
    public var error: ErrorPayload.Detail? {
        (try? JSONDecoder().decode(ErrorPayload.self, from: Data(body.readableBytesView)))?.error
    }

    public var bodyText: String { String(buffer: body) }
}
