import ChatConformance
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

    /// The one start of the server, awaited by every caller. Actors are re-entrant: were the
    /// location set only after the start, every test arriving during it would start a cluster of
    /// its own. A failed start fails every caller with the same error; it is not retried.
    private var start: Task<PostgresLocation, any Error>?

    /// Creates an empty database and returns where it is.
    public func makeDatabase() async throws -> PostgresLocation {
        var location = try await server()
        let name = "chat_test_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        try await Self.execute("CREATE DATABASE \(name)", on: location)
        location.database = name
        return location
    }

    /// Drops a database made by ``makeDatabase()``.
    public func dropDatabase(_ location: PostgresLocation) async throws {
        guard let name = location.database, name.hasPrefix("chat_test_") else { return }
        try await Self.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", on: try await server())
    }

    private func server() async throws -> PostgresLocation {
        let start = self.start ?? Task { try await Self.locateOrStartServer() }
        self.start = start
        return try await start.value
    }

    private static func locateOrStartServer() async throws -> PostgresLocation {
        guard let url = ProcessInfo.processInfo.environment["TEST_DATABASE_URL"], !url.isEmpty else {
            return try await ThrowawayCluster.start()
        }
        guard case .postgres(let configured) = try DatabaseLocation(url: url) else {
            throw TestPostgresError("TEST_DATABASE_URL must be a postgres:// URL, got \(url)")
        }
        return configured
    }

    /// Runs one statement on a short-lived connection and returns how many rows it returned.
    /// Only for SQL the tests wrote themselves: nothing is escaped.
    /// - Parameter connectTimeout: how long connecting may take before this throws; by
    ///   default ``Patience/wait``, as a hundred tests may be connecting at once.
    /// - Throws: ``TestPostgresError`` with PostgreSQL's own words (`PSQLError` prints only a
    ///   generic text).
    @discardableResult
    public static func execute(
        _ sql: String, on location: PostgresLocation,
        connectTimeout: TimeAmount = .nanoseconds(Int64(Patience.wait / .nanoseconds(1)))
    ) async throws -> Int {
        do {
            return try await run(sql, on: location, connectTimeout: connectTimeout)
        } catch let error as PSQLError {
            throw TestPostgresError("\(sql.prefix(60)): \(String(reflecting: error))")
        }
    }

    /// The first column of the first row `sql` returns, as text (nil when none or NULL). Only
    /// for SQL the tests wrote themselves.
    public static func scalar(_ sql: String, on location: PostgresLocation) async throws -> String? {
        let connection = try await PostgresConnection.connect(
            configuration: PostgresConnection.Configuration(
                host: location.host, port: location.port, username: location.username, password: location.password,
                database: location.database, tls: .disable),
            id: 1, logger: Logger(label: "test-postgres"))
        do {
            let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test-postgres"))
                .collect()
            try await connection.close()
            return try rows.first?.decode(String?.self) ?? nil
        } catch {
            try? await connection.close()
            throw error
        }
    }

    private static func run(
        _ sql: String, on location: PostgresLocation, connectTimeout: TimeAmount
    ) async throws -> Int {
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: .disable)
        configuration.options.connectTimeout = connectTimeout
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

/// A PostgreSQL cluster in a temporary directory, owned by this test process. Every child
/// process is awaited without blocking a thread (``ChildProcess``).
enum ThrowawayCluster {
    /// Directory names start with this, followed by the owning process id.
    static let directoryPrefix = "chat-test-pg-"

    static func start() async throws -> PostgresLocation {
        try await startPrimary().location
    }

    /// A new cluster in a directory of its own: where it is, and its directory and owner, for
    /// a standby of it (``ReplicatedPostgres``).
    static func startPrimary() async throws -> (location: PostgresLocation, directory: URL, owner: ClusterOwner?) {
        let binaries = try PostgresBinaries.locate()
        removeAbandonedClusters()
        let pid = ProcessInfo.processInfo.processIdentifier
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(directoryPrefix)\(pid)-\(UUID().uuidString.prefix(8))")
        let dataDirectory = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let owner = try ClusterOwner.forThisProcess()
        try owner?.own(directory.path)
        ClusterCleanup.register {
            for name in dataDirectoryNames { stop(dataDirectory: directory.appendingPathComponent(name)) }
            try? FileManager.default.removeItem(at: directory)
        }

        let (initdbCommand, initdbArguments) = owner.command(
            binaries.initdb,
            ["-D", dataDirectory.path, "-U", "postgres", "--auth=trust", "--no-sync", "--locale=C.UTF-8", "-E", "UTF8"])
        let initdb = try await ChildProcess.run(initdbCommand, initdbArguments)
        guard initdb.status == 0 else {
            throw TestPostgresError("initdb failed for the throwaway PostgreSQL:\n\(initdb.output)")
        }
        let location = try await serve(dataDirectory, in: directory, owner: owner, binaries: binaries).location
        return (location, directory, owner)
    }

    /// The data directories a cluster's directory may hold: the primary's and a standby's.
    static let dataDirectoryNames = ["data", "standby"]

    /// Starts `postgres` on `dataDirectory` and waits until it accepts connections; on `port`,
    /// or on a free one. Its log goes to `<data directory name>.log` in `directory`.
    static func serve(
        _ dataDirectory: URL, in directory: URL, owner: ClusterOwner?, binaries: PostgresBinaries,
        port fixedPort: Int? = nil
    ) async throws -> (location: PostgresLocation, server: ChildProcess) {
        let log = directory.appendingPathComponent("\(dataDirectory.lastPathComponent).log")
        if !FileManager.default.fileExists(atPath: log.path) {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            try owner?.own(log.path)
        }
        let logHandle = try FileHandle(forWritingTo: log)
        try logHandle.seekToEnd()
        defer { try? logHandle.close() }
        // The free port can be taken by someone else before postgres binds it: then postgres
        // exits at once, and another port is tried.
        for _ in 1...3 {
            let port: Int
            if let fixedPort { port = fixedPort } else { port = try await FreePort.find() }
            // postgres runs as a foreground child (pg_ctl start under Process can hang on its pipes).
            let (command, arguments) = owner.command(
                binaries.postgres,
                [
                    "-D", dataDirectory.path, "-p", String(port), "-k", directory.path,
                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", "-c", "max_connections=300",
                ])
            let server = try ChildProcess(command, arguments, output: logHandle)
            let location = PostgresLocation(
                host: "127.0.0.1", port: port, username: "postgres", password: nil, database: "postgres",
                tls: .disable)
            // Generous: a slow machine running a hundred tests still starts PostgreSQL in seconds,
            // and every probe gives up after 2 s, so this deadline is kept.
            let deadline = ContinuousClock.now + .seconds(60)
            while server.isRunning {
                if (try? await TestPostgres.execute("SELECT 1", on: location, connectTimeout: .seconds(2))) != nil {
                    return (location, server)
                }
                guard ContinuousClock.now < deadline else {
                    server.terminate()
                    throw TestPostgresError(
                        "The throwaway PostgreSQL did not accept connections within 60 s:\n\(contents(of: log))")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        throw TestPostgresError("The throwaway PostgreSQL did not start:\n\(contents(of: log))")
    }

    private static func contents(of file: URL) -> String {
        (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    }

    /// Stops and deletes clusters left behind by test processes that died without cleaning up.
    private static func removeAbandonedClusters() {
        let temporary = FileManager.default.temporaryDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
        for name in names where name.hasPrefix(directoryPrefix) {
            let owner = name.dropFirst(directoryPrefix.count).split(separator: "-").first.flatMap { Int32($0) }
            guard let owner, kill(owner, 0) != 0, errno == ESRCH else { continue }
            let directory = temporary.appendingPathComponent(name)
            for data in dataDirectoryNames { stop(dataDirectory: directory.appendingPathComponent(data)) }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// Stops the cluster's postmaster with SIGQUIT (PostgreSQL's immediate shutdown: it ends its
    /// backends and exits) and waits up to 10 s for it to go, then kills it. Signals rather than
    /// `pg_ctl`: this runs at exit and while starting, where no child process should be waited for.
    static func stop(dataDirectory: URL) {
        guard let postmaster = quit(dataDirectory) else { return }
        for _ in 0..<1000 {
            guard kill(postmaster, 0) == 0 else { return }
            usleep(10_000)
        }
        kill(postmaster, SIGKILL)
    }

    /// ``stop(dataDirectory:)`` for a test: it waits without holding one of the cooperative
    /// pool's few threads, which every other test running at the time needs.
    static func stopWaiting(dataDirectory: URL) async {
        guard let postmaster = quit(dataDirectory) else { return }
        for _ in 0..<1000 {
            guard kill(postmaster, 0) == 0 else { return }
            try? await Task.sleep(for: .milliseconds(10))
        }
        kill(postmaster, SIGKILL)
    }

    /// Sends the cluster's postmaster SIGQUIT; returns its pid, or nil when none runs.
    private static func quit(_ dataDirectory: URL) -> pid_t? {
        let pidFile = dataDirectory.appendingPathComponent("postmaster.pid")
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8),
            let postmaster = text.split(separator: "\n").first.flatMap({ pid_t($0) }), postmaster > 0,
            kill(postmaster, SIGQUIT) == 0
        else { return nil }
        return postmaster
    }
}

/// Who runs the cluster: `initdb` and `postgres` refuse to run as root, so a test process
/// running as root runs them as the `postgres` system user (scripts/install-postgres creates it).
struct ClusterOwner {
    let uid: uid_t
    let gid: gid_t

    /// The `postgres` user when this process runs as root, else nil (the cluster runs as us).
    static func forThisProcess() throws -> ClusterOwner? {
        guard geteuid() == 0 else { return nil }
        guard let entry = getpwnam("postgres") else {
            throw TestPostgresError(
                "Running as root, the throwaway PostgreSQL needs the system user postgres: install the server "
                    + "with scripts/install-postgres (Debian's postgresql package creates the user).")
        }
        return ClusterOwner(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// Makes `path` this user's.
    func own(_ path: String) throws {
        guard chown(path, uid, gid) == 0 else { throw TestPostgresError("chown \(path) failed: errno \(errno)") }
    }
}

extension ClusterOwner? {
    /// The executable and arguments, wrapped in `runuser` when run as the cluster owner.
    /// runuser forwards SIGTERM to the command.
    func command(_ executable: String, _ arguments: [String]) -> (URL, [String]) {
        guard self != nil else { return (URL(fileURLWithPath: executable), arguments) }
        return (URL(fileURLWithPath: "/usr/sbin/runuser"), ["-u", "postgres", "--", executable] + arguments)
    }
}

/// Where `initdb` and `postgres` are: on `PATH`, or in Debian's
/// `/usr/lib/postgresql/<version>/bin` (newest version first).
struct PostgresBinaries {
    let initdb: String
    let postgres: String
    /// Beside `initdb` (where a link to it points: some machines link only the server's
    /// binaries onto `PATH`).
    var basebackup: String {
        URL(fileURLWithPath: initdb).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("pg_basebackup").path
    }

    static func locate() throws -> PostgresBinaries {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        var directories = path.split(separator: ":").map(String.init)
        let debianRoot = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: debianRoot)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        directories += versions.map { "\(debianRoot)/\($0)/bin" }
        for directory in directories {
            let candidate = PostgresBinaries(initdb: "\(directory)/initdb", postgres: "\(directory)/postgres")
            if [candidate.initdb, candidate.postgres].allSatisfy(FileManager.default.isExecutableFile) {
                return candidate
            }
        }
        throw TestPostgresError(
            """
            The integration tests need PostgreSQL, and none was found: no initdb/postgres on PATH or in \
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
    public static func find() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port
        try? await channel.close()
        guard let port else { throw TestPostgresError("could not find a free port") }
        return port
    }
}
