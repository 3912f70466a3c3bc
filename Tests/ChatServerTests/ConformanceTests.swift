import ChatConformance
import ChatProtocol
import ChatTestSupport
import Foundation
import Testing

/// The conformance checks of `chatsim verify`, run here against this server on SQLite over real
/// HTTP and WebSocket connections (the integration tests run them on PostgreSQL and two nodes),
/// and the report a run writes.
@Suite("Conformance checks on SQLite")
struct ConformanceTests {
    static func target(_ api: APITestClient) throws -> ConformanceTarget {
        try ConformanceTarget(
            nodes: ["http://127.0.0.1:\(try #require(api.client.port))"], document: try ProtocolDocument.strict.get())
    }

    /// Server settings for the checks that judge a limit: low enough that every machine reaches
    /// them, so here those checks never skip themselves.
    static let limitSettings: [String: [String: String]] = [
        "the send rate limit answers rate_limited with retry_after_ms; the same send then goes through": [
            "CHAT_WS_SEND_RATE": "5", "CHAT_WS_SEND_BURST": "5",
        ],
        "a user's connections beyond the per-user limit are refused with 429 too_many_connections": [
            "CHAT_WS_CONNECTIONS_PER_USER": "3"
        ],
    ]

    /// With the server's default settings a check that skips itself found nothing to judge (the
    /// send limit is only reached when the server reads sends faster than it refills them, which
    /// a loaded machine may not): it passes without a verdict, as `chatsim verify` reports it.
    @Test(arguments: ConformanceSuite.checks.filter { $0.nodes == 1 })
    func holds(_ check: ConformanceCheck) async throws {
        let settings = Self.limitSettings[check.description]
        try await TestApp.run(testing: .live, overrides: settings ?? [:]) { api in
            do {
                try await check.run(try Self.target(api))
            } catch let skipped as CheckSkipped where settings == nil {
                print("conformance skipped: \(check): \(skipped)")
            }
        }
    }

    @Test func theLimitSettingsNameChecksThatExist() {
        let names = Set(ConformanceSuite.checks.map(\.description))
        #expect(Self.limitSettings.keys.allSatisfy(names.contains))
    }

    @Test func aRunPrintsEachCheckAndASummaryAndWritesJSONAndJUnit() async throws {
        try await TestApp.run(testing: .live) { api in
            let checks = [
                ConformanceSuite.checks[0],
                ConformanceCheck("a check that fails names why") { _ in throw CheckFailure("it <always> does") },
                ConformanceCheck("a check across nodes", nodes: 2) { _ in },
            ]
            var lines: [String] = []
            let report = await ConformanceSuite.run(checks, against: try Self.target(api)) {
                lines.append(ConformanceReport.line($0))
            }
            #expect(
                lines == [
                    "pass  \(checks[0].description)", "FAIL  a check that fails names why: it <always> does",
                    "skip  a check across nodes: needs 2 nodes: give their URLs separated by commas",
                ])
            #expect(report.summary == "1 passed, 1 failed, 1 skipped" && !report.passed)
            let json = try JSONSerialization.jsonObject(with: report.json()) as? [String: Any]
            #expect(
                (json?["results"] as? [[String: Any]])?.map { $0["outcome"] as? String } == [
                    "passed", "failed", "skipped",
                ])
            let junit = report.junit
            #expect(junit.contains(#"tests="3" failures="1" skipped="1""#))
            #expect(junit.contains(#"<failure message="it &lt;always&gt; does"/>"#))
        }
    }

    /// A hung check fails at its time limit and the run goes on: waits for frames end when
    /// their check is cancelled.
    @Test func aCheckStillWaitingAtItsTimeLimitFailsAndTheRunGoesOn() async throws {
        try await TestApp.run(testing: .live) { api in
            let checks = [
                ConformanceCheck("a check that waits for a frame that never comes") { target in
                    let socket = try await target.connect(try await target.register("waiting"))
                    _ = try await socket.next(timeout: .seconds(3600))
                },
                ConformanceCheck("the next check") { _ in },
            ]
            let report = await ConformanceSuite.run(checks, against: try Self.target(api), timeLimit: .seconds(5))
            #expect(report.results.map(\.outcome) == [.failed, .passed])
            #expect(report.results.first?.reason == "did not finish within 5.0 seconds")
        }
    }
}
