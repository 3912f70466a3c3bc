import ChatConformance
import ChatProtocol
import ChatServer
import ChatTestSupport
import Foundation
import Logging
import NIOWebSocket
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The built `chat-server` executable, run as users run it, on SQLite and PostgreSQL.
@Suite("chat-server command line", .timeLimit(.minutes(5)))
struct CommandLineTests {
    @Test(arguments: TestDatabase.allCases)
    func migrateSeedAndAdminWork(_ database: TestDatabase) async throws {
        try await database.withLocation { location in
            let cli = try ChatServerCLI(database: location)
            #expect(try await cli.run("migrate", "status").output.contains("0001 initial_schema  pending"))
            let applied = try await cli.run("migrate", "up").output
            #expect(
                applied.contains("Applied 0001 initial_schema") && applied.contains("Applied 0002 sessions_valid_from"))
            #expect(try await cli.run("migrate", "up").output.contains("Nothing to apply"))
            let status = try await cli.run("migrate", "status").output
            #expect(
                status.contains("0001 initial_schema  applied") && status.contains("0002 sessions_valid_from  applied"))
            let newestFirst = [
                "0009 cluster_limits", "0008 shared_token_secret", "0007 message_search", "0006 message_updates",
                "0005 database_generation", "0004 membership_events", "0003 cluster", "0002 sessions_valid_from",
                "0001 initial_schema",
            ]
            for migration in newestFirst {
                let reverted = try await cli.run("migrate", "down", "--steps", "1").output
                #expect(reverted.contains("Reverted \(migration)"), "\(reverted)")
            }
            #expect(try await cli.run("migrate", "up").status == 0)
            #expect(try await cli.run("seed").output.contains("log in as Sergey, Arina, Vlad"))
            #expect(try await cli.run("seed").status == 0, "seeding twice is fine")
            #expect(try await cli.run("admin", "grant", "sergey").output.contains("is now an administrator"))
            #expect(try await cli.run("admin", "revoke", "Sergey").status == 0)
            let unknown = try await cli.run("admin", "grant", "Nobody")
            #expect(unknown.status != 0 && unknown.output.contains("No user is named Nobody"))
        }
    }

    @Test func seedRefusesAnUnmigratedDatabase() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            let result = try await ChatServerCLI(database: location).run("seed")
            #expect(result.status != 0 && result.output.contains("chat-server migrate up"))
        }
    }

    @Test(arguments: TestDatabase.allCases)
    func serveMigratesSeedsServesAndStopsCleanly(_ database: TestDatabase) async throws {
        try await database.withLocation { location in
            let cli = try ChatServerCLI(database: location, environment: "local")
            let port = try await FreePort.find()
            let server = try cli.start("serve", "--port", String(port))
            defer { server.terminate() }
            try await cli.waitForLog("is ready at http://127.0.0.1:\(port)/", process: server)
            #expect(cli.log.contains("Loaded demo data: log in as Sergey, Arina, Vlad with password 12345"))
            // A second server on the same database: another node on PostgreSQL, refused on SQLite.
            let secondCLI = try ChatServerCLI(database: location, environment: "local")
            let secondPort = try await FreePort.find()
            let second = try secondCLI.start("serve", "--port", String(secondPort))
            defer { second.terminate() }
            switch database {
            case .sqlite:
                #expect(try await second.exitStatus() != 0)
                #expect(secondCLI.log.contains("a SQLite database serves a single node"), "\(secondCLI.log)")
            case .postgres:
                try await secondCLI.waitForLog("is ready at http://127.0.0.1:\(secondPort)/", process: second)
                second.terminate()
                #expect(try await second.exitStatus() == 0)
            }

            var login = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/auth/login")!)
            login.httpMethod = "POST"
            login.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            login.httpBody = Data("grant_type=password&username=Sergey&password=12345".utf8)
            let (tokenData, _) = try await URLSession.shared.data(for: login)
            let token = try JSONDecoder().decode(TokenPayload.self, from: tokenData)
            var chats = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/chats")!)
            chats.setValue("Bearer \(token.accessToken)", forHTTPHeaderField: "Authorization")
            let (chatData, _) = try await URLSession.shared.data(for: chats)
            let summaries = try JSONDecoder().decode([ChatSummaryPayload].self, from: chatData)
            #expect(Set(summaries.map(\.name)) == ["Demo group", "Sergey & Arina"])

            server.terminate()
            #expect(try await server.exitStatus() == 0, "SIGTERM is a clean shutdown")
        }
    }

    /// docs/operations.md, "Backups": a SQLite backup of a running server, a restore refused
    /// while it runs and done once it stopped; on PostgreSQL, the generation step alone.
    @Test(arguments: TestDatabase.allCases)
    func backupAndRestoreWorkAsDocumented(_ database: TestDatabase) async throws {
        try await database.withLocation { location in
            let cli = try ChatServerCLI(database: location, environment: "local")
            guard case .sqlite(let path) = location else {
                let backup = try await cli.run("database", "backup", "/tmp/never-written")
                #expect(backup.status != 0 && backup.output.contains("pg_dump"), "\(backup.output)")
                let restore = try await cli.run("database", "restore", "/tmp/never-read")
                #expect(restore.status != 0 && restore.output.contains("new-generation"), "\(restore.output)")
                #expect(try await cli.run("migrate", "up").status == 0)
                let renewed = try await cli.run("database", "new-generation")
                #expect(renewed.status == 0 && renewed.output.contains("generation is now"), "\(renewed.output)")
                return
            }
            let backup = path + ".backup"
            let port = try await FreePort.find()
            let server = try cli.start("serve", "--port", String(port))
            defer { server.terminate() }
            try await cli.waitForLog("is ready at http://127.0.0.1:\(port)/", process: server)
            let written = try await cli.run("database", "backup", backup)
            #expect(written.status == 0 && written.output.contains("Wrote a backup"), "\(written.output)")
            #expect(try await cli.run("database", "backup", backup).output.contains("exists already"))
            let whileServing = try await cli.run("database", "restore", backup)
            #expect(whileServing.status != 0 && whileServing.output.contains("Another chat-server is serving"))
            server.terminate()
            #expect(try await server.exitStatus() == 0)
            let restored = try await cli.run("database", "restore", backup)
            #expect(restored.status == 0 && restored.output.contains("its new generation is"), "\(restored.output)")
            let again = try cli.start("serve", "--port", String(port))
            defer { again.terminate() }
            try await cli.waitForLog("is ready at http://127.0.0.1:\(port)/", process: again)
            #expect(!cli.log.contains("Loaded demo data"), "the restored database has the demo users already")
        }
    }

    /// docs/operations.md, "Backups": a backup taken while sends go on is a consistent copy
    /// (gap-free `seq`s) that, restored, holds every message acknowledged before it began.
    @Test func aBackupTakenWhileSendsGoOnHoldsEveryMessageAcknowledgedBeforeIt() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            guard case .sqlite(let path) = location else { return }
            let cli = try ChatServerCLI(
                database: location, overrides: ["CHAT_WS_SEND_RATE": "100000", "CHAT_WS_SEND_BURST": "100000"])
            let port = try await FreePort.find()
            let server = try cli.start("serve", "--port", String(port))
            defer { if server.isRunning { server.terminate() } }
            try await cli.waitForLog("is ready at", process: server)
            let http = ServerHTTP(port: port)
            let alice = try await http.user("alice")
            let chat = try await http.createChat(as: alice)
            let socket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            let progress = BackupProgress()
            let backup = path + ".backup"

            let (beforeBackup, output) = try await withThrowingTaskGroup(
                of: Void.self, returning: ([Int64: String], String).self
            ) { group in
                // Sends flow, a few at a time, until the backup has finished; the last one is
                // "final", whose ack ends the reading.
                group.addTask {
                    var number = 0
                    while !progress.backupDone.load(ordering: .relaxed) {
                        for _ in 0..<10 {
                            number += 1
                            socket.send(.send(chatID: chat, clientID: "m\(number)", text: "message \(number)"))
                        }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    socket.send(.send(chatID: chat, clientID: "final", text: "final"))
                }
                group.addTask {
                    while true {
                        switch try await socket.next() {
                        case .ack(let clientID, let message, _):
                            progress.acked.withLock { $0[message.seq] = message.text }
                            if clientID == "final" { return }
                        case .error(_, _, "final", _, _):
                            return  // refused (a busy machine): nothing more comes
                        default:
                            continue  // sends refused as overloaded store nothing
                        }
                    }
                }
                while progress.acked.withLock({ $0.count }) < 200 { try await Task.sleep(for: .milliseconds(10)) }
                let beforeBackup = progress.acked.withLock { $0 }
                let written = try await cli.run("database", "backup", backup)
                progress.backupDone.store(true, ordering: .relaxed)
                try await group.waitForAll()
                return (beforeBackup, written.output)
            }
            #expect(output.contains("Wrote a backup"), "\(output)")
            let ackedInTheEnd = progress.acked.withLock { $0 }
            #expect(ackedInTheEnd.count > beforeBackup.count, "sends went on while the backup ran")
            await socket.close()
            server.terminate()
            #expect(try await server.exitStatus() == 0)

            let restored = try await cli.run("database", "restore", backup)
            #expect(restored.status == 0 && restored.output.contains("its new generation is"), "\(restored.output)")
            let stored = try await withRunningStore(
                try await makeStore(for: location, poolSize: 2, logger: Logger(label: "test"))
            ) { store in
                var messages: [Message] = []
                while true {
                    let page = try await store.messages(in: chat, .offset(Int64(messages.count), limit: 1000))
                    guard !page.isEmpty else { return messages }
                    messages += page
                }
            }
            #expect(stored.map(\.seq) == Array(1...Int64(stored.count)), "the backup is consistent: gap-free seqs")
            let storedTexts = Dictionary(uniqueKeysWithValues: stored.map { ($0.seq, $0.text) })
            let missing = beforeBackup.filter { storedTexts[$0.key] != $0.value }
            #expect(missing.isEmpty, "acknowledged before the backup began, not restored: \(missing.keys.sorted())")
        }
    }

    @Test(arguments: TestDatabase.allCases)
    func stoppingUnderLoadLosesNoAcknowledgedMessage(_ database: TestDatabase) async throws {
        try await database.withLocation { location in
            let cli = try ChatServerCLI(
                database: location, overrides: ["CHAT_WS_SEND_RATE": "100000", "CHAT_WS_SEND_BURST": "100000"])
            let port = try await FreePort.find()
            let server = try cli.start("serve", "--port", String(port))
            defer { if server.isRunning { server.interrupt() } }
            try await cli.waitForLog("is ready at", process: server)
            let http = ServerHTTP(port: port)
            let alice = try await http.user("alice")
            let bob = try await http.user("bob")
            let chat = try await http.createChat(as: alice)
            try await http.addUser(bob.id, to: chat, as: alice)
            let aliceSocket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            let bobSocket = try await ChatWebSocketClient.connect(port: port, token: bob.token)

            // Alice pipelines many sends; the server is stopped while they are being stored.
            for number in 1...400 {
                aliceSocket.send(.send(chatID: chat, clientID: "m\(number)", text: "message \(number)"))
            }
            var acked: [MessagePayload] = []
            while acked.count < 20 {
                if case .ack(_, let message, false) = try await aliceSocket.next() { acked.append(message) }
            }
            server.terminate()
            while let frame = try? await aliceSocket.next(timeout: .seconds(30)) {
                if case .ack(_, let message, false) = frame { acked.append(message) }
            }
            #expect(try await aliceSocket.closedByServer()?.closeCode == .goingAway)
            #expect(try await bobSocket.closedByServer()?.closeCode == .goingAway)
            #expect(try await server.exitStatus() == 0, "SIGTERM under load is a clean shutdown:\n\(cli.log)")

            let stored = try await withRunningStore(
                try await makeStore(for: location, poolSize: 2, logger: Logger(label: "test"))
            ) {
                try await $0.messages(in: chat, .offset(0, limit: 1000))
            }
            let storedByID = Dictionary(uniqueKeysWithValues: stored.map { ($0.id, $0) })
            #expect(acked.count >= 20)
            for message in acked {
                let row = storedByID[message.id]
                #expect(
                    row?.seq == message.seq && row?.text == message.text,
                    "acknowledged message \(message.seq) is stored")
            }
            #expect(stored.map(\.seq) == Array(1...Int64(stored.count)), "stored messages have gap-free seqs")
        }
    }

    @Test func serveRefusesToStartWithPendingMigrationsWhenToldNotToMigrate() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            let port = try await FreePort.find()
            let result = try await ChatServerCLI(database: location).run(
                "serve", "--port", String(port), "--no-migrate")
            #expect(result.status != 0 && result.output.contains("are pending and --no-migrate was given"))
        }
    }

    @Test func anUnreachableDatabaseIsAClearErrorNotAHang() async throws {
        let closedPort = try await FreePort.find()
        let location = PostgresLocation(
            host: "127.0.0.1", port: closedPort, username: "chat", password: "wrong", database: "chat", tls: .disable)
        let result = try await ChatServerCLI(database: .postgres(location)).run("migrate", "status")
        #expect(
            result.status != 0
                && result.output.contains("cannot reach the database: PostgreSQL at 127.0.0.1:\(closedPort)"))
    }

    @Test func prodRefusesToStartWithoutASecret() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            let cli = try ChatServerCLI(database: location, environment: "prod", secret: nil)
            let port = try await FreePort.find()
            let result = try await cli.run("serve", "--port", String(port))
            #expect(result.status != 0 && result.output.contains("CHAT_JWT_SECRET is not set"))
        }
    }
}

/// What a send load during a backup has seen: the acknowledged texts by `seq`, and whether
/// the backup has finished.
private final class BackupProgress: Sendable {
    let acked = Mutex<[Int64: String]>([:])
    let backupDone = Atomic(false)
}

/// REST calls to a server started from the executable.
private struct ServerHTTP {
    let port: Int

    struct User {
        let id: UserID
        let token: String
    }

    func user(_ name: String) async throws -> User {
        let account: AccountPayload = try await call(
            "POST", "/user", json: CreateUserRequest(name: name, email: "\(name)@example.com", password: "password123"))
        let token: TokenPayload = try await call(
            "POST", "/auth/login", form: "username=\(name)&password=password123")
        return User(id: account.id, token: token.accessToken)
    }

    func createChat(as user: User) async throws -> ChatID {
        let chat: ChatPayload = try await call(
            "POST", "/chat", json: CreateChatRequest(name: "Load", chatType: .group), token: user.token)
        return chat.id
    }

    func addUser(_ id: UserID, to chat: ChatID, as user: User) async throws {
        let _: ChatPayload = try await call("POST", "/chat/add_user/\(id)/\(chat)", token: user.token)
    }

    private func call<T: Decodable>(
        _ method: String, _ path: String, json: (any Encodable)? = nil, form: String? = nil, token: String? = nil
    ) async throws -> T {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let json {
            request.httpBody = try JSONEncoder().encode(json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let form {
            request.httpBody = Data(form.utf8)
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, _) = try await URLSession.shared.data(for: request)
        return try JSONDecoder().decode(T.self, from: data)
    }
}

private struct CLIFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Runs the built `chat-server` binary in a scratch directory with a given environment.
private final class ChatServerCLI: Sendable {
    let executable: URL
    let directory: URL
    let environment: [String: String]
    let logFile: URL

    init(
        database: DatabaseLocation, environment name: String = "test",
        secret: String? = String(repeating: "s", count: 40), overrides: [String: String] = [:]
    ) throws {
        // The test bundle sits next to the products it was built with.
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        executable = products.appendingPathComponent("chat-server")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw CLIFailure("\(executable.path) is missing: run `swift build` first")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logFile = directory.appendingPathComponent("output.log")
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CHAT_") }
        environment["CHAT_ENV"] = name
        environment["CHAT_BCRYPT_COST"] = name == "prod" ? "10" : "4"
        environment["CHAT_JWT_SECRET"] = secret
        switch database {
        case .sqlite(let path): environment["DATABASE_URL"] = "sqlite:\(path)"
        case .postgres(let postgres):
            let credentials = [postgres.username, postgres.password].compactMap { $0 }.joined(separator: ":")
            environment["DATABASE_URL"] =
                "postgres://\(credentials)@\(postgres.host):\(postgres.port)/\(postgres.database ?? "")?sslmode=disable"
        }
        environment.merge(overrides) { _, override in override }
        self.environment = environment
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs a command to completion and returns its exit status and combined output.
    func run(_ arguments: String...) async throws -> (status: Int32, output: String) {
        let status = try await start(arguments).exitStatus()
        return (status, log)
    }

    func start(_ arguments: String...) throws -> ChildProcess {
        try start(arguments)
    }

    private func start(_ arguments: [String]) throws -> ChildProcess {
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: logFile)
        defer { try? output.close() }
        return try ChildProcess(
            executable, arguments, environment: environment, directory: directory, output: output)
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Waits until the output contains `text`, failing if the process exits or 60 s pass.
    func waitForLog(_ text: String, process: ChildProcess) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !log.contains(text) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw CLIFailure("chat-server never logged \"\(text)\":\n\(log)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
