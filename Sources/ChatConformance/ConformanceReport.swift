import Foundation

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
