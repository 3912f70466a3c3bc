import AsyncHTTPClient
import ChatProtocol
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// The server a conformance run checks, seen from outside, over HTTP and WebSocket only: its
/// nodes' base URLs, and the accounts the run registers. Their names start with a random
/// prefix, so that a run against a live deployment leaves everyone else's data alone.
public final class ConformanceTarget: Sendable {
    /// Base URLs (`http://host:port`), one per node; REST calls go to the first unless told.
    public let nodes: [String]
    /// The document every frame received is checked against.
    let document: ProtocolDocument
    let prefix: String
    private let accounts = Atomic<Int>(0)
    private let connections = Atomic<Int>(0)
    private let http = HTTPClient.shared

    /// An account this run registered, logged in.
    public struct Account: Sendable {
        public let id: UserID
        public let name: String
        public let password: String
        public let token: String
    }

    /// An HTTP answer.
    public struct Reply: Sendable {
        public let status: Int
        public let headers: HTTPHeaders
        public let body: Data

        /// The body as `T`, when the status is `expected`; otherwise a failure naming both.
        public func decode<T: Decodable>(_ type: T.Type, expecting expected: Int) throws -> T {
            try require(status == expected, "expected \(expected), got \(status): \(text)")
            do {
                return try JSONDecoder().decode(T.self, from: body)
            } catch {
                throw CheckFailure("the \(status) body is not \(T.self): \(text)")
            }
        }

        /// The error body's code, when the body has the one error shape.
        public var errorCode: String? {
            (try? JSONDecoder().decode(ErrorPayload.self, from: body))?.error.code
        }

        public var text: String { String(decoding: body, as: UTF8.self) }

        init(status: Int, headers: HTTPHeaders, body: Data) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        /// Reads a whole HTTP/1.1 response as received on a raw connection (not chunked).
        init(rawResponse bytes: [UInt8]) throws {
            let text = String(decoding: bytes, as: UTF8.self)
            guard let headEnd = text.range(of: "\r\n\r\n") else { throw CheckFailure("no HTTP response: \(text)") }
            let lines = text[..<headEnd.lowerBound].components(separatedBy: "\r\n")
            let statusLine = lines.first?.split(separator: " ") ?? []
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
                throw CheckFailure("no HTTP status line: \(lines.first ?? "")")
            }
            var headers = HTTPHeaders()
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.add(
                    name: String(line[..<colon]),
                    value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            self.init(status: status, headers: headers, body: Data(text[headEnd.upperBound...].utf8))
        }
    }

    /// The host and port of `node` when its URL is plain `http://` (for raw connections).
    public func plainAddress(of node: Int) -> (host: String, port: Int)? {
        guard let url = URL(string: nodes[node]), url.scheme == "http", let host = url.host else { return nil }
        return (host, url.port ?? 80)
    }

    public init(nodes: [String], document: ProtocolDocument) throws {
        guard !nodes.isEmpty, nodes.allSatisfy({ $0.hasPrefix("http://") || $0.hasPrefix("https://") }) else {
            throw CheckFailure("give the server's base URLs as http://host:port")
        }
        self.nodes = nodes.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.document = document
        self.prefix = "v" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    }

    /// Waits up to `wait` for every node to answer `/health/ready` with 200, then fails
    /// naming the first that does not.
    public func waitUntilReady(within wait: Duration) async throws {
        let deadline = ContinuousClock.now + wait
        for node in nodes.indices {
            while true {
                let problem: String
                do {
                    let reply = try await request(.GET, "/health/ready", node: node)
                    if reply.status == 200 { break }
                    problem = "the server at \(nodes[node]) is not ready: \(reply.status) \(reply.text)"
                } catch {
                    problem = "cannot reach the server at \(nodes[node]): \(error)"
                }
                guard ContinuousClock.now < deadline else { throw CheckFailure(problem) }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Sends a request to `node` with a JSON or form body, as `token` (Bearer) when given.
    public func request(
        _ method: HTTPMethod, _ path: String, json: (any Encodable)? = nil, form: String? = nil, token: String? = nil,
        headers: [(String, String)] = [], node: Int = 0
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: nodes[node] + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.headers.add(contentsOf: headers)
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(json)))
        } else if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        let response = try await http.execute(request, timeout: .seconds(Patience.wait.components.seconds))
        let body = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Data(body.readableBytesView))
    }

    /// A new name for `label`, unique in this run and unlike anyone else's.
    public func uniqueName(_ label: String) -> String {
        "\(prefix)-\(label)-\(accounts.add(1, ordering: .relaxed).newValue)"
    }

    /// Registers a new account and logs it in.
    public func register(_ label: String, password: String = "conformance-password") async throws -> Account {
        let name = uniqueName(label)
        let account = try await request(
            .POST, "/user",
            json: CreateUserRequest(name: name, email: "\(name)@conformance.invalid", password: password)
        ).decode(AccountPayload.self, expecting: 201)
        let token = try await logIn(name, password: password).decode(TokenPayload.self, expecting: 200).accessToken
        return Account(id: account.id, name: name, password: password, token: token)
    }

    /// `POST /auth/login` with the form the original API takes.
    public func logIn(_ name: String, password: String, node: Int = 0) async throws -> Reply {
        let form = [("grant_type", "password"), ("username", name), ("password", password)]
            .map { "\($0)=\($1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }
            .joined(separator: "&")
        return try await request(.POST, "/auth/login", form: form, node: node)
    }

    public func createChat(_ label: String, type: ChatType = .group, as creator: Account) async throws -> ChatPayload {
        try await request(
            .POST, "/chat", json: CreateChatRequest(name: uniqueName(label), chatType: type), token: creator.token
        ).decode(ChatPayload.self, expecting: 201)
    }

    public func addUser(_ user: Account, to chat: ChatID, as actor: Account) async throws -> Reply {
        try await request(.POST, "/chat/add_user/\(user.id)/\(chat)", token: actor.token)
    }

    public func removeUser(_ user: Account, from chat: ChatID, as actor: Account) async throws -> Reply {
        try await request(.POST, "/chat/remove_user/\(user.id)/\(chat)", token: actor.token)
    }

    /// `PATCH /messages/{id}`: a new text.
    public func edit(_ message: MessageID, text: String, as actor: Account) async throws -> Reply {
        try await request(.PATCH, "/messages/\(message)", json: EditMessageRequest(text: text), token: actor.token)
    }

    /// A group chat of `creator` with `members` added.
    public func group(_ label: String, of creator: Account, with members: [Account]) async throws -> ChatPayload {
        let chat = try await createChat(label, as: creator)
        for member in members {
            _ = try await addUser(member, to: chat.id, as: creator).decode(ChatPayload.self, expecting: 200)
        }
        return chat
    }

    /// Sends `count` messages into `chat` on `socket` at once (client ids `<label>-1`, ...;
    /// texts `<label> 1`, ...), and returns them as stored, in `seq` order. Sends the server
    /// refuses for now (`rate_limited`, `overloaded`) are sent again after its
    /// `retry_after_ms`, as a client does; any other refusal fails the check.
    public func store(
        _ count: Int, in chat: ChatID, on socket: ChatWebSocketClient, label: String = "m"
    ) async throws -> [MessagePayload] {
        func send(_ number: Int) {
            socket.send(.send(chatID: chat, clientID: "\(label)-\(number)", text: "\(label) \(number)"))
        }
        for number in 1...count { send(number) }
        var stored: [String: MessagePayload] = [:]
        while stored.count < count {
            switch try await socket.next() {
            case .ack(let clientID, let message, _): stored[clientID] = message
            case .error(let code, _, let ref?, let retryAfterMs, _)
            where code == ErrorCode.rateLimited.rawValue || code == ErrorCode.overloaded.rawValue:
                guard let number = Int(ref.dropFirst(label.count + 1)) else { continue }
                try await Task.sleep(for: .milliseconds(retryAfterMs ?? 100))
                send(number)
            case .error(let code, let message, let ref, _, _):
                throw CheckFailure("sending \(ref ?? "a message"): \(code) \(message)")
            default: continue
            }
        }
        return stored.values.sorted { $0.seq < $1.seq }
    }

    /// Two new accounts and their PRIVATE chat.
    public func pair() async throws -> (alice: Account, bob: Account, chat: ChatPayload) {
        let (alice, bob) = (try await register("alice"), try await register("bob"))
        let chat = try await createChat("pair", type: .private, as: alice)
        _ = try await addUser(bob, to: chat.id, as: alice).decode(ChatPayload.self, expecting: 200)
        return (alice, bob, chat)
    }

    /// Opens a WebSocket connection as `account` and waits for `ready`: to `node` when given,
    /// otherwise to the nodes in turn, so that with two nodes every check crosses them.
    public func connect(_ account: Account, node: Int? = nil, query: String = "") async throws -> ChatWebSocketClient {
        let base = nodes[node ?? connections.add(1, ordering: .relaxed).oldValue % nodes.count]
        let url =
            (base.hasPrefix("https://") ? "wss://" + base.dropFirst(8) : "ws://" + base.dropFirst(7)) + "/ws" + query
        return try await ChatWebSocketClient.connect(url: url, token: account.token, document: document)
    }
}
