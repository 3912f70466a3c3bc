import ArgumentParser
import ChatConformance
import ChatProtocol
import Foundation

/// `chatsim verify`: the conformance checks against a running server, from outside.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a running server's guarantees from outside, over HTTP and WebSocket only.",
        discussion: """
            Registers its own users (names start with a random prefix) and prints one line per \
            check, then "N passed, N failed". Every frame received is checked against the \
            protocol document (asyncapi/asyncapi.json). With two URLs, the cross-node checks \
            run too. Exits with status 1 when a check fails. See docs/conformance.md.
            """)

    @Option(help: "The server's base URL; two nodes' URLs separated by commas add the cross-node checks.")
    var url = "http://127.0.0.1:8000"
    @Option(help: "Run only the checks whose name contains this text.")
    var only: String?
    @Option(help: "Seconds to wait for the server to be ready (it may be starting).")
    var waitForServer = 10.0
    @Option(help: "Also write the results as JSON to this file.")
    var json: String?
    @Option(help: "Also write the results as JUnit XML to this file.")
    var junit: String?

    func run() async throws {
        let target = try ConformanceTarget(
            nodes: url.split(separator: ",").map(String.init), document: try ProtocolDocument.lenient.get())
        try await target.waitUntilReady(within: .milliseconds(Int64(waitForServer * 1000)))
        let checks = ConformanceSuite.checks.filter { check in only.map { check.description.contains($0) } ?? true }
        guard !checks.isEmpty else { throw ValidationError("no check's name contains \"\(only ?? "")\"") }
        let report = await ConformanceSuite.run(checks, against: target) { print(ConformanceReport.line($0)) }
        print(report.summary)
        if let json { try report.json().write(to: URL(fileURLWithPath: json)) }
        if let junit { try Data(report.junit.utf8).write(to: URL(fileURLWithPath: junit)) }
        if !report.passed { throw ExitCode.failure }
    }
}
