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
        accountChecks + membershipChecks + connectionChecks + historyChecks + limitChecks + realtimeChecks
}

/// What a run of the checks found, for people (one line a check, then a summary), for
/// machines (JSON) and for CI (JUnit XML).
public struct ConformanceReport: Codable, Sendable {
    public enum Outcome: String, Codable, Sendable {
        case passed, failed, skipped
    }

    public struct Result: Codable, Sendable {
        public var check: String
        public var outcome: Outcome
        /// Why it failed or was skipped.
        public var reason: String?
        public var seconds: Double
    }

    public var target: [String]
    public var results: [Result]

    public func count(_ outcome: Outcome) -> Int { results.filter { $0.outcome == outcome }.count }

    public var passed: Bool { count(.failed) == 0 }

    /// `N passed, N failed` (`, N skipped` when any was).
    public var summary: String {
        "\(count(.passed)) passed, \(count(.failed)) failed"
            + (count(.skipped) > 0 ? ", \(count(.skipped)) skipped" : "")
    }

    /// One line for a result: `pass`, `FAIL` or `skip`, the check, and the reason.
    public static func line(_ result: Result) -> String {
        let mark =
            switch result.outcome {
            case .passed: "pass"
            case .failed: "FAIL"
            case .skipped: "skip"
            }
        return "\(mark)  \(result.check)" + (result.reason.map { ": \($0)" } ?? "")
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// JUnit XML: one test suite, one test case a check.
    public var junit: String {
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let total = results.reduce(0) { $0 + $1.seconds }
        var lines = [
            #"<?xml version="1.0" encoding="UTF-8"?>"#,
            #"<testsuite name="chatsim verify" tests="\#(results.count)" failures="\#(count(.failed))" "#
                + #"skipped="\#(count(.skipped))" time="\#(String(format: "%.3f", total))">"#,
        ]
        for result in results {
            let head =
                #"  <testcase classname="conformance" name="\#(escaped(result.check))" "#
                + #"time="\#(String(format: "%.3f", result.seconds))""#
            switch result.outcome {
            case .passed: lines.append(head + "/>")
            case .failed:
                lines += [head + ">", #"    <failure message="\#(escaped(result.reason ?? ""))"/>"#, "  </testcase>"]
            case .skipped:
                lines += [head + ">", #"    <skipped message="\#(escaped(result.reason ?? ""))"/>"#, "  </testcase>"]
            }
        }
        lines.append("</testsuite>")
        return lines.joined(separator: "\n") + "\n"
    }
}

extension ConformanceSuite {
    /// Runs `checks` one after another against `target`, calling `progress` with each result.
    public static func run(
        _ checks: [ConformanceCheck] = checks, against target: ConformanceTarget,
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
                    try await check.run(target)
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
