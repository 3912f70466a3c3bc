import Foundation
import Synchronization

/// A child process whose exit is awaited without blocking the cooperative pool.
///
/// `Process.waitUntilExit()` parks the calling thread until the child ends. Called from a test,
/// that thread belongs to the cooperative pool, which has one thread per core: on a 2-core
/// machine two such waits stop every other test. Here a thread of the child's own waits for
/// it, and the tasks that wait are suspended, not blocked.
///
/// The child is started with `posix_spawn`, not Foundation's `Process`: `Process.run()` in
/// the toolchain this project builds with (Swift 6.3.1) reads past a buffer while it lists
/// `/proc/self/fd`, and crashed the test run now and then (swift-corelibs-foundation#5472).
public final class ChildProcess: Sendable {
    /// The child's process id.
    public let pid: Int32
    private let exit = Exit()

    /// The exit status once known, and the tasks waiting for it; shared with the thread that
    /// waits for the child.
    private final class Exit: Sendable {
        struct State {
            var status: Int32?
            var waiters: [Int: CheckedContinuation<Int32, any Error>] = [:]
            var nextWaiter = 0
        }

        let state = Mutex(State())

        func withLock<T: Sendable>(_ body: (inout sending State) throws -> sending T) rethrows -> T {
            try state.withLock(body)
        }
    }

    /// Why a child could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts `executable` with `arguments`; standard output and error go to `output` (a file, so
    /// that a chatty child never blocks on a full pipe), or nowhere. The child inherits no other
    /// descriptor, starts with default signal handling, and runs in `directory` when one is given.
    public init(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
        directory: URL? = nil, output: FileHandle? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let output {
            posix_spawn_file_actions_adddup2(&actions, output.fileDescriptor, 1)
            posix_spawn_file_actions_adddup2(&actions, output.fileDescriptor, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        guard let closeFrom = GNUSpawnActions.closeFrom, let changeDirectory = GNUSpawnActions.changeDirectory else {
            throw SpawnError(description: "posix_spawn without closefrom and chdir file actions (glibc 2.34 or later)")
        }
        _ = closeFrom(&actions, 3)
        if let directory { _ = changeDirectory(&actions, directory.path) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        var noSignal = sigset_t()
        sigemptyset(&noSignal)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        posix_spawnattr_setsigmask(&attributes, &noSignal)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable.path] + arguments).map { strdup($0) }
        let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } }
        defer {
            for string in argv + (envp ?? []) { free(string) }
        }
        var pid: pid_t = 0
        let result = (argv + [nil]).withUnsafeBufferPointer { argv in
            if let envp {
                return (envp + [nil]).withUnsafeBufferPointer { envp in
                    posix_spawn(&pid, executable.path, &actions, &attributes, argv.baseAddress!, envp.baseAddress!)
                }
            }
            return posix_spawn(&pid, executable.path, &actions, &attributes, argv.baseAddress!, environ)
        }
        guard result == 0 else {
            throw SpawnError(description: "cannot start \(executable.path): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        let (exit, child) = (self.exit, pid)
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 && errno == EINTR {}
            // Exited: its exit code; killed: the signal's number, as `Process` reports it.
            let ended = status & 0x7F == 0 ? (status >> 8) & 0xFF : status & 0x7F
            let waiters = exit.withLock { state in
                state.status = ended
                defer { state.waiters = [:] }
                return state.waiters.values
            }
            for waiter in waiters { waiter.resume(returning: ended) }
        }
    }

    /// Whether the child has not exited yet.
    public var isRunning: Bool { exit.withLock { $0.status == nil } }

    /// Sends SIGTERM.
    public func terminate() { if isRunning { kill(pid, SIGTERM) } }

    /// Sends SIGINT.
    public func interrupt() { if isRunning { kill(pid, SIGINT) } }

    /// The exit status, once the child has ended; throws `CancellationError` when the waiting
    /// task is cancelled first.
    public func exitStatus() async throws -> Int32 {
        let waiter = exit.withLock { state -> Int in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let status = exit.withLock { state -> Int32? in
                    if state.status == nil { state.waiters[waiter] = continuation }
                    return state.status
                }
                if let status {
                    continuation.resume(returning: status)
                } else if Task.isCancelled {
                    // Cancelled before the waiter was registered: the handler below found nothing.
                    exit.withLock { $0.waiters.removeValue(forKey: waiter) }?.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            exit.withLock { $0.waiters.removeValue(forKey: waiter) }?.resume(throwing: CancellationError())
        }
    }

    /// Runs a command to completion and returns its exit status and combined output.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil
    ) async throws -> (status: Int32, output: String) {
        let outputFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("chat-test-output-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputFile) }
        let output = try FileHandle(forWritingTo: outputFile)
        defer { try? output.close() }
        let child = try ChildProcess(
            executable, arguments, environment: environment, directory: directory, output: output)
        let status = try await child.exitStatus()
        return (status, (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "")
    }
}

/// glibc's file actions for closing descriptors and changing directory in the child, which
/// Swift's Glibc module does not declare (they are GNU extensions): looked up by name.
private enum GNUSpawnActions {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    typealias ChangeDirectory =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?)
        -> Int32

    static let closeFrom = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
        unsafeBitCast($0, to: CloseFrom.self)
    }
    static let changeDirectory = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map {
        unsafeBitCast($0, to: ChangeDirectory.self)
    }
}
