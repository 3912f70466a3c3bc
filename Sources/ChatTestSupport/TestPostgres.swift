import ChatServer
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// A PostgreSQL server for tests, shared by every test in the process; each test gets its own
/// fresh database on it.
///
/// With `TEST_DATABASE_URL` set (for example to the server from
/// `docker compose -f test-docker-compose.yml up -d`), that server is used. Otherwise a
/// throwaway cluster is made with the local `initdb` and `postgres` binaries in a temporary
/// directory on a free port, and removed when the process exits. Missing binaries are a loud
/// failure that says how to get PostgreSQL, never a silent skip.
public actor TestPostgres {
    public static let shared = TestPostgres()

    private var server: PostgresLocation?

    /// Creates an empty database and returns where it is.
    public func makeDatabase() async throws -> PostgresLocation {
        var location = try await startedServer()
        let name = "chat_test_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        try await Self.execute("CREATE DATABASE \(name)", on: location)
        location.database = name
        return location
    }

    /// Drops a database made by ``makeDatabase()``.
    public func dropDatabase(_ location: PostgresLocation) async throws {
        guard let name = location.database, name.hasPrefix("chat_test_") else { return }
        var maintenance = location
        maintenance.database = server?.database
        try await Self.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", on: maintenance)
    }

    private func startedServer() async throws -> PostgresLocation {
        if let server { return server }
        let location: PostgresLocation
        if let url = ProcessInfo.processInfo.environment["TEST_DATABASE_URL"], !url.isEmpty {
            guard case .postgres(let configured) = try DatabaseLocation(url: url) else {
                throw TestPostgresError("TEST_DATABASE_URL must be a postgres:// URL, got \(url)")
            }
            location = configured
        } else {
            location = try await ThrowawayCluster.start()
        }
        server = location
        return location
    }

    /// Runs one statement on a short-lived connection and returns how many rows it returned.
    /// Only for SQL the tests wrote themselves: nothing is escaped.
    @discardableResult
    public static func execute(_ sql: String, on location: PostgresLocation) async throws -> Int {
        let configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: .disable)
        let connection = try await PostgresConnection.connect(
            configuration: configuration, id: 1, logger: Logger(label: "test-postgres"))
        do {
            let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test-postgres"))
                .collect()
            try await connection.close()
            return rows.count
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

/// Why the test database could not be provided; the message says what to do.
public struct TestPostgresError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// A PostgreSQL cluster in a temporary directory, owned by this test process.
enum ThrowawayCluster {
    /// Directory names start with this, followed by the owning process id.
    static let directoryPrefix = "chat-test-pg-"

    static func start() async throws -> PostgresLocation {
        let binaries = try PostgresBinaries.locate()
        removeAbandonedClusters(binaries: binaries)
        let pid = ProcessInfo.processInfo.processIdentifier
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(directoryPrefix)\(pid)-\(UUID().uuidString.prefix(8))")
        let dataDirectory = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // initdb and postgres refuse to run as root: run them as the postgres user instead.
        let runAs = geteuid() == 0 ? "postgres" : nil
        if let runAs { try run("/bin/chown", ["-R", runAs, directory.path]) }

        try run(
            binaries.initdb,
            ["-D", dataDirectory.path, "-U", "postgres", "--auth=trust", "--no-sync", "--no-locale", "-E", "UTF8"],
            as: runAs)
        let log = directory.appendingPathComponent("postgres.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        if let runAs { try run("/bin/chown", [runAs, log.path]) }
        ClusterCleanup.register {
            _ = try? run(binaries.pgCtl, ["stop", "-D", dataDirectory.path, "-m", "immediate", "-w"], as: runAs)
            try? FileManager.default.removeItem(at: directory)
        }
        // The free port can be taken by someone else before postgres binds it: then postgres
        // exits at once, and another port is tried.
        for attempt in 1...3 {
            let port = try FreePort.find()
            // postgres runs as a foreground child (pg_ctl start under Process can hang on its pipes).
            let server = Process()
            (server.executableURL, server.arguments) = command(
                binaries.postgres,
                [
                    "-D", dataDirectory.path, "-p", String(port), "-k", directory.path,
                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", "-c", "max_connections=300",
                ], as: runAs)
            let logHandle = try FileHandle(forWritingTo: log)
            logHandle.seekToEndOfFile()
            server.standardOutput = logHandle
            server.standardError = logHandle
            try server.run()

            let location = PostgresLocation(
                host: "127.0.0.1", port: port, username: "postgres", password: nil, database: "postgres",
                tls: .disable)
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                do {
                    try await TestPostgres.execute("SELECT 1", on: location)
                    return location
                } catch {
                    let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                    if !server.isRunning, attempt < 3 { break }
                    guard server.isRunning, ContinuousClock.now < deadline else {
                        throw TestPostgresError("The throwaway PostgreSQL did not start:\n\(output)")
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        throw TestPostgresError("The throwaway PostgreSQL did not start")
    }

    /// Stops and deletes clusters left behind by test processes that died without cleaning up.
    private static func removeAbandonedClusters(binaries: PostgresBinaries) {
        let temporary = FileManager.default.temporaryDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
        for name in names where name.hasPrefix(directoryPrefix) {
            let owner = name.dropFirst(directoryPrefix.count).split(separator: "-").first.flatMap { Int32($0) }
            guard let owner, kill(owner, 0) != 0, errno == ESRCH else { continue }
            let directory = temporary.appendingPathComponent(name)
            _ = try? run(
                binaries.pgCtl, ["stop", "-D", directory.appendingPathComponent("data").path, "-m", "immediate"],
                as: geteuid() == 0 ? "postgres" : nil)
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// The executable and arguments, wrapped in `runuser` when running as another user.
    private static func command(_ executable: String, _ arguments: [String], as user: String?) -> (URL, [String]) {
        guard let user else { return (URL(fileURLWithPath: executable), arguments) }
        return (URL(fileURLWithPath: "/usr/sbin/runuser"), ["-u", user, "--", executable] + arguments)
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], as user: String? = nil) throws -> String {
        let process = Process()
        (process.executableURL, process.arguments) = command(executable, arguments, as: user)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw TestPostgresError("\(executable) \(arguments.joined(separator: " ")) failed:\n\(text)")
        }
        return text
    }

}

/// Where `initdb`, `postgres` and `pg_ctl` are: on `PATH`, or in Debian's
/// `/usr/lib/postgresql/<version>/bin` (newest version first).
struct PostgresBinaries {
    let initdb: String
    let postgres: String
    let pgCtl: String

    static func locate() throws -> PostgresBinaries {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        var directories = path.split(separator: ":").map(String.init)
        let debianRoot = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: debianRoot)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        directories += versions.map { "\(debianRoot)/\($0)/bin" }
        for directory in directories {
            let candidate = PostgresBinaries(
                initdb: "\(directory)/initdb", postgres: "\(directory)/postgres", pgCtl: "\(directory)/pg_ctl")
            if [candidate.initdb, candidate.postgres, candidate.pgCtl].allSatisfy(FileManager.default.isExecutableFile)
            {
                return candidate
            }
        }
        throw TestPostgresError(
            """
            The integration tests need PostgreSQL, and none was found: no initdb/postgres/pg_ctl on PATH or in \
            /usr/lib/postgresql/*/bin, and TEST_DATABASE_URL is not set. Either install the server \
            (Debian/Ubuntu: `sudo apt-get install -y postgresql`; scripts/install-postgres does this), or start one \
            with `docker compose -f test-docker-compose.yml up -d` and run \
            `TEST_DATABASE_URL=postgres://chat:chat@127.0.0.1:55432/chat_test swift test`.
            """)
    }
}

/// Stops throwaway clusters when the test process exits.
enum ClusterCleanup {
    private static let actions = Mutex<[@Sendable () -> Void]>([])
    private static let installAtExit: Void = {
        atexit { ClusterCleanup.runAll() }
    }()

    static func register(_ action: @escaping @Sendable () -> Void) {
        _ = installAtExit
        actions.withLock { $0.append(action) }
    }

    private static func runAll() {
        let pending = actions.withLock { actions in
            defer { actions.removeAll() }
            return actions
        }
        for action in pending { action() }
    }
}

/// Finds loopback ports for servers the tests start.
public enum FreePort {
    /// A port nothing listens on right now: bind port 0 and let the kernel choose.
    public static func find() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? channel.close().wait() }
        guard let port = channel.localAddress?.port else { throw TestPostgresError("could not find a free port") }
        return port
    }
}
