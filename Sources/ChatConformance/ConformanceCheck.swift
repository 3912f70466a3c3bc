import Foundation

/// One guarantee of the server, named as a sentence and checked from outside
/// (``ConformanceTarget``): the same check runs in `swift test` against this server in process
/// and in `chatsim verify` against any URL.
public struct ConformanceCheck: Sendable, CustomStringConvertible {
    /// The guarantee, as a sentence.
    public let description: String
    /// Nodes it needs: 2 for a cross-node check, which is skipped against one.
    public let nodes: Int
    public let run: @Sendable (ConformanceTarget) async throws -> Void

    public init(
        _ description: String, nodes: Int = 1, run: @escaping @Sendable (ConformanceTarget) async throws -> Void
    ) {
        self.description = description
        self.nodes = nodes
        self.run = run
    }
}

/// Why a check failed: what was expected and what the server did.
public struct CheckFailure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// A check that cannot run against this target, and why (a raw connection to an `https://` URL).
public struct CheckSkipped: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Fails the check with `message` unless `condition` holds.
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw CheckFailure(message()) }
}

/// Every conformance check, in the order a run prints them.
public enum ConformanceSuite {
    public static let checks: [ConformanceCheck] =
        accountChecks + chatChecks + membershipChecks + connectionChecks + historyChecks + searchChecks + limitChecks
        + realtimeChecks
}

extension ConformanceSuite {
    /// Runs `checks` one after another against `target`, calling `progress` with each result.
    /// A check still running after `timeLimit` is cancelled and fails.
    public static func run(
        _ checks: [ConformanceCheck] = checks, against target: ConformanceTarget, timeLimit: Duration = Patience.check,
        progress: (ConformanceReport.Result) -> Void = { _ in }
    ) async -> ConformanceReport {
        var results: [ConformanceReport.Result] = []
        for check in checks {
            let start = ContinuousClock.now
            var result = ConformanceReport.Result(check: check.description, outcome: .passed, reason: nil, seconds: 0)
            if check.nodes > target.nodes.count {
                result.outcome = .skipped
                result.reason = "needs \(check.nodes) nodes: give their URLs separated by commas"
            } else {
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await check.run(target) }
                        group.addTask {
                            try await Task.sleep(for: timeLimit)
                            throw CheckFailure("did not finish within \(timeLimit)")
                        }
                        defer { group.cancelAll() }
                        try await group.next()
                    }
                } catch let skipped as CheckSkipped {
                    result.outcome = .skipped
                    result.reason = skipped.description
                } catch {
                    result.outcome = .failed
                    result.reason = "\(error)"
                }
            }
            result.seconds = (ContinuousClock.now - start).seconds
            progress(result)
            results.append(result)
        }
        return ConformanceReport(target: target.nodes, results: results)
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
