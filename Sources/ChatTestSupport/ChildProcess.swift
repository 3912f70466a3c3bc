import Foundation
import Synchronization

/// A child process whose exit is awaited without blocking a thread.
///
/// `Process.waitUntilExit()` parks the calling thread until the child ends. Called from a test,
/// that thread belongs to the cooperative pool, which has one thread per core: on a 2-core
/// machine two such waits stop every other test. Here the exit arrives through the process's
/// termination handler instead, and waiters are suspended, not blocked.
public final class ChildProcess: Sendable {
    private let process: Process
    private let exit = Exit()

    /// The exit status once known, and the tasks waiting for it; shared with the termination
    /// handler.
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

    /// Starts `executable` with `arguments`; standard output and error go to `output` (a file, so
    /// that a chatty child never blocks on a full pipe), or nowhere.
    public init(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
        directory: URL? = nil, output: FileHandle? = nil
    ) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = output ?? FileHandle.nullDevice
        process.standardError = output ?? FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        self.process = process
        let exit = self.exit
        process.terminationHandler = { ended in
            let waiters = exit.withLock { state in
                state.status = ended.terminationStatus
                defer { state.waiters = [:] }
                return state.waiters.values
            }
            for waiter in waiters { waiter.resume(returning: ended.terminationStatus) }
        }
        try process.run()
    }

    /// The child's process id.
    public var pid: Int32 { process.processIdentifier }

    /// Whether the child has not exited yet.
    public var isRunning: Bool { exit.withLock { $0.status == nil } }

    /// Sends SIGTERM.
    public func terminate() { if isRunning { process.terminate() } }

    /// Sends SIGINT.
    public func interrupt() { if isRunning { process.interrupt() } }

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
