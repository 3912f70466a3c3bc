import ChatProtocol
import ChatServer
import ChatTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The built `chat-server` executable, run as users run it, on SQLite and PostgreSQL.
@Suite("chat-server command line")
struct CommandLineTests {
    @Test(arguments: TestDatabase.allCases)
    func migrateSeedAndAdminWork(_ database: TestDatabase) async throws {
        try await database.withLocation { location in
            let cli = try ChatServerCLI(database: location)
            #expect(try cli.run("migrate", "status").output.contains("0001 initial_schema  pending"))
            #expect(try cli.run("migrate", "up").output.contains("Applied 0001 initial_schema"))
            #expect(try cli.run("migrate", "up").output.contains("Nothing to apply"))
            #expect(try cli.run("migrate", "status").output.contains("0001 initial_schema  applied"))
            #expect(try cli.run("migrate", "down", "--steps", "1").output.contains("Reverted 0001 initial_schema"))
            #expect(try cli.run("migrate", "up").status == 0)
            #expect(try cli.run("seed").output.contains("log in as Sergey, Arina, Vlad"))
            #expect(try cli.run("seed").status == 0, "seeding twice is fine")
            #expect(try cli.run("admin", "grant", "sergey").output.contains("is now an administrator"))
            #expect(try cli.run("admin", "revoke", "Sergey").status == 0)
            let unknown = try cli.run("admin", "grant", "Nobody")
            #expect(unknown.status != 0 && unknown.output.contains("No user is named Nobody"))
        }
    }

    @Test func seedRefusesAnUnmigratedDatabase() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            let result = try ChatServerCLI(database: location).run("seed")
            #expect(result.status != 0 && result.output.contains("chat-server migrate up"))
        }
    }

    @Test(arguments: TestDatabase.allCases)
    func serveMigratesSeedsServesAndStopsCleanly(_ database: TestDatabase) async throws {
        try await database.withLocation { location in
            let cli = try ChatServerCLI(database: location, environment: "local")
            let port = try FreePort.find()
            let server = try cli.start("serve", "--port", String(port))
            defer { server.terminate() }
            try await cli.waitForLog("is ready at http://127.0.0.1:\(port)/", process: server)
            #expect(cli.log.contains("Loaded demo data: log in as Sergey, Arina, Vlad with password 12345"))

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
            server.waitUntilExit()
            #expect(server.terminationStatus == 0, "SIGTERM is a clean shutdown")
        }
    }

    @Test func serveRefusesToStartWithPendingMigrationsWhenToldNotToMigrate() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            let result = try ChatServerCLI(database: location).run(
                "serve", "--port", String(try FreePort.find()), "--no-migrate")
            #expect(result.status != 0 && result.output.contains("are pending and --no-migrate was given"))
        }
    }

    @Test func anUnreachableDatabaseIsAClearErrorNotAHang() async throws {
        let closedPort = try FreePort.find()
        let location = PostgresLocation(
            host: "127.0.0.1", port: closedPort, username: "chat", password: "wrong", database: "chat", tls: .disable)
        let result = try ChatServerCLI(database: .postgres(location)).run("migrate", "status")
        #expect(
            result.status != 0
                && result.output.contains("cannot reach the database: PostgreSQL at 127.0.0.1:\(closedPort)"))
    }

    @Test func prodRefusesToStartWithoutASecret() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            let cli = try ChatServerCLI(database: location, environment: "prod", secret: nil)
            let result = try cli.run("serve", "--port", String(try FreePort.find()))
            #expect(result.status != 0 && result.output.contains("CHAT_JWT_SECRET is not set"))
        }
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
        secret: String? = String(repeating: "s", count: 40)
    )
        throws
    {
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
        self.environment = environment
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs a command to completion and returns its exit status and combined output.
    func run(_ arguments: String...) throws -> (status: Int32, output: String) {
        let process = try start(arguments)
        process.waitUntilExit()
        return (process.terminationStatus, log)
    }

    func start(_ arguments: String...) throws -> Process {
        try start(arguments)
    }

    private func start(_ arguments: [String]) throws -> Process {
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: logFile)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = directory
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return process
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Waits until the output contains `text`, failing if the process exits or 60 s pass.
    func waitForLog(_ text: String, process: Process) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !log.contains(text) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw CLIFailure("chat-server never logged \"\(text)\":\n\(log)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
