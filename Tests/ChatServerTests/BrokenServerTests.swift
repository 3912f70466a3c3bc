import ChatConformance
import ChatProtocol
import ChatTestSupport
import Testing

/// The conformance suite can fail: against this server behind a proxy that breaks the protocol
/// (``MisbehavingProxy``), it names the checks each fault breaks, and passes the ones it leaves
/// alone.
@Suite("Conformance checks against a broken server")
struct BrokenServerTests {
    /// Only HTTP: passes whatever the proxy does to WebSocket frames.
    static let control = "an account registers once: a taken name gets 409 name_taken in the one error shape"

    /// The checks each fault must fail.
    static let broken: [MisbehavingProxy.Fault: [String]] = [
        .reordersMessages: ["concurrent senders: every connection sees seq order without gaps"],
        .duplicatesMessages: [
            "concurrent senders: every connection sees seq order without gaps",
            "a retried client id is acknowledged as a duplicate, broadcast once",
        ],
        .skipsOneAck: ["a retried client id is acknowledged as a duplicate, broadcast once"],
        .leaksToRemovedMembers: ["membership changes take effect on open connections"],
    ]

    @Test(arguments: MisbehavingProxy.Fault.allCases)
    func namesEachBrokenCheck(_ fault: MisbehavingProxy.Fault) async throws {
        let expected = try #require(Self.broken[fault])
        let control = ConformanceSuite.checks.filter { $0.description == Self.control }
        let checks = ConformanceSuite.checks.filter { expected.contains($0.description) }
        try #require(control.count == 1 && checks.count == expected.count, "every named check exists")
        try await TestApp.run(testing: .live) { api in
            try await MisbehavingProxy.run(fault, before: try #require(api.client.port)) { port in
                let target = try ConformanceTarget(
                    nodes: ["http://127.0.0.1:\(port)"], document: try ProtocolDocument.strict.get())
                // The control has the suite's own patience: beside busy loops and the rest of
                // the tests, 20 s was once not enough for it. A skipped ack leaves its check
                // waiting: for the broken ones the time limit ends the wait.
                let report = await ConformanceSuite.run(control, against: target)
                let broken = await ConformanceSuite.run(checks, against: target, timeLimit: .seconds(20))
                for result in report.results + broken.results {
                    print("against a server that \(fault): \(ConformanceReport.line(result))")
                    let shouldFail = expected.contains(result.check)
                    #expect(
                        result.outcome == (shouldFail ? .failed : .passed),
                        "\(fault) should \(shouldFail ? "fail" : "pass"): \(ConformanceReport.line(result))")
                }
            }
        }
    }
}
