import AsyncHTTPClient
import ChatProtocol
import Foundation
import NIOCore
import NIOHTTP1

/// The REST calls the simulator makes to set up users and chats, to read history, and to edit
/// and delete messages.
struct ServerAPI: Sendable {
    let baseURL: String
    let client: HTTPClient

    /// A simulated user, logged in.
    struct User: Sendable {
        let id: UserID
        let name: String
        let token: String
    }

    /// Registers `name` and logs in.
    func register(_ name: String, password: String) async throws -> User {
        let registration = try await send(
            .POST, "/user", json: CreateUserRequest(name: name, email: "\(name)@chatsim.invalid", password: password))
        let account = try registration.decode(AccountPayload.self, expecting: .created, doing: "registering \(name)")
        let login = try await send(
            .POST, "/auth/login", form: "grant_type=password&username=\(name)&password=\(password)")
        let token = try login.decode(TokenPayload.self, expecting: .ok, doing: "logging in as \(name)").accessToken
        return User(id: account.id, name: name, token: token)
    }

    func createChat(named name: String, type: ChatType, as user: User) async throws -> ChatID {
        try await send(.POST, "/chat", json: CreateChatRequest(name: name, chatType: type), token: user.token)
            .decode(ChatPayload.self, expecting: .created, doing: "creating chat \(name)").id
    }

    func addUser(_ member: User, to chat: ChatID, as owner: User) async throws {
        _ = try await send(.POST, "/chat/add_user/\(member.id)/\(chat)", token: owner.token)
            .decode(ChatPayload.self, expecting: .ok, doing: "adding \(member.name) to chat \(chat)")
    }

    /// One history page: how many messages it held.
    func history(of chat: ChatID, query: String, as user: User) async throws -> Int {
        try await send(.GET, "/history/\(chat)?\(query)", token: user.token)
            .decode([MessagePayload].self, expecting: .ok, doing: "reading history \(query)").count
    }

    /// Up to `limit` messages of `chat` after `seq`, in order.
    func messages(of chat: ChatID, after seq: Int64, limit: Int, as user: User) async throws -> [MessagePayload] {
        try await send(.GET, "/history/\(chat)?after_seq=\(seq)&limit=\(limit)", token: user.token)
            .decode([MessagePayload].self, expecting: .ok, doing: "reading history after \(seq)")
    }

    /// The newest `limit` messages of `chat`, in order.
    func latestMessages(of chat: ChatID, limit: Int, as user: User) async throws -> [MessagePayload] {
        try await send(.GET, "/history/\(chat)?before_seq=\(Int64.max)&limit=\(limit)", token: user.token)
            .decode([MessagePayload].self, expecting: .ok, doing: "reading the newest messages")
    }

    /// `GET /search`: how many results the first page of `query` held.
    func search(_ query: String, limit: Int, as user: User) async throws -> Int {
        let escaped = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return try await send(.GET, "/search?q=\(escaped)&limit=\(limit)", token: user.token)
            .decode(SearchResultsPayload.self, expecting: .ok, doing: "searching \(query)").messages.count
    }

    /// `PATCH /messages/{id}`: the sender's new text.
    func editMessage(_ id: MessageID, text: String, as user: User) async throws {
        _ = try await send(.PATCH, "/messages/\(id)", json: EditMessageRequest(text: text), token: user.token)
            .decode(MessagePayload.self, expecting: .ok, doing: "editing message \(id)")
    }

    /// `DELETE /messages/{id}`.
    func deleteMessage(_ id: MessageID, as user: User) async throws {
        _ = try await send(.DELETE, "/messages/\(id)", token: user.token)
            .decode(MessagePayload.self, expecting: .ok, doing: "deleting message \(id)")
    }

    struct Reply {
        let status: HTTPResponseStatus
        let body: ByteBuffer

        func decode<T: Decodable>(
            _ type: T.Type, expecting expected: HTTPResponseStatus, doing what: String
        ) throws -> T {
            guard status == expected else {
                throw SimulationError("\(what): expected \(expected), got \(status): \(String(buffer: body))")
            }
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        }
    }

    func send(
        _ method: HTTPMethod, _ path: String, json: (any Encodable)? = nil, form: String? = nil, token: String? = nil
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(json)))
        }
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        let response = try await client.execute(request, timeout: .seconds(60))
        return Reply(status: response.status, body: try await response.body.collect(upTo: 64 << 20))
    }
}
