import ChatConformance
import ChatServer
import Foundation
import Synchronization

/// A throwaway PostgreSQL primary with a streaming standby of it, made with
/// `pg_basebackup -R` and started on its own port: for the read-replica tests, which pause,
/// stop and restart the standby, so they get a pair of their own rather than the shared server.
public final class ReplicatedPostgres: Sendable {
    /// The database `chat` on the primary.
    public let primary: PostgresLocation
    /// The same database on the standby.
    public let replica: PostgresLocation
    private let directory: URL
    private let owner: ClusterOwner?
    private let binaries: PostgresBinaries
    private let standby = Mutex<ChildProcess?>(nil)

    private init(
        primary: PostgresLocation, replica: PostgresLocation, directory: URL, owner: ClusterOwner?,
        binaries: PostgresBinaries, standby: ChildProcess
    ) {
        self.primary = primary
        self.replica = replica
        self.directory = directory
        self.owner = owner
        self.binaries = binaries
        self.standby.withLock { $0 = standby }
    }

    /// Starts a primary with an empty database `chat`, and a standby of it.
    public static func start() async throws -> ReplicatedPostgres {
        let binaries = try PostgresBinaries.locate()
        var (primary, directory, owner) = try await ThrowawayCluster.startPrimary()
        try await TestPostgres.execute("CREATE DATABASE chat", on: primary)
        primary.database = "chat"
        let standbyData = directory.appendingPathComponent("standby")
        let (command, arguments) = owner.command(
            binaries.basebackup,
            [
                "-D", standbyData.path, "-h", primary.host, "-p", String(primary.port), "-U", "postgres",
                "-X", "stream", "-R", "--no-sync", "--checkpoint=fast",
            ])
        let backup = try await ChildProcess.run(command, arguments)
        guard backup.status == 0 else { throw TestPostgresError("pg_basebackup failed:\n\(backup.output)") }
        var (replica, standby) = try await ThrowawayCluster.serve(
            standbyData, in: directory, owner: owner, binaries: binaries)
        replica.database = "chat"
        return ReplicatedPostgres(
            primary: primary, replica: replica, directory: directory, owner: owner, binaries: binaries,
            standby: standby)
    }

    /// Stops replaying the primary's WAL: the standby stays up, at the position it has.
    public func pauseReplay() async throws {
        try await TestPostgres.execute("SELECT pg_wal_replay_pause()", on: replica)
    }

    public func resumeReplay() async throws {
        try await TestPostgres.execute("SELECT pg_wal_replay_resume()", on: replica)
    }

    /// Returns once the standby has replayed everything the primary had written when called:
    /// up to its WAL's insert position, which the test server's `synchronous_commit=off` can
    /// leave ahead of what it has written out.
    public func waitForReplay() async throws {
        guard let target = try await TestPostgres.scalar("SELECT pg_current_wal_insert_lsn()::text", on: primary) else {
            throw TestPostgresError("the primary has no WAL position")
        }
        let deadline = ContinuousClock.now + Patience.wait
        while ContinuousClock.now < deadline {
            let caught = try await TestPostgres.scalar(
                "SELECT (pg_last_wal_replay_lsn() >= '\(target)'::pg_lsn)::text", on: replica)
            if caught == "true" { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestPostgresError("the standby did not replay to \(target) in time")
    }

    /// Stops the standby at once (PostgreSQL's immediate shutdown), as a crash would.
    public func stopReplica() async throws {
        await ThrowawayCluster.stopWaiting(dataDirectory: directory.appendingPathComponent("standby"))
        let server = standby.withLock { $0 }
        _ = try await server?.exitStatus()
    }

    /// Starts the standby again on its port.
    public func startReplica() async throws {
        let server = try await ThrowawayCluster.serve(
            directory.appendingPathComponent("standby"), in: directory, owner: owner, binaries: binaries,
            port: replica.port
        ).server
        standby.withLock { $0 = server }
    }

    /// Stops both and deletes their files.
    public func stop() async {
        for name in ThrowawayCluster.dataDirectoryNames {
            await ThrowawayCluster.stopWaiting(dataDirectory: directory.appendingPathComponent(name))
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs `body` with a new pair, and stops the pair afterwards.
    public static func with(_ body: (ReplicatedPostgres) async throws -> Void) async throws {
        let pair = try await start()
        do {
            try await body(pair)
        } catch {
            await pair.stop()
            throw error
        }
        await pair.stop()
    }
}
