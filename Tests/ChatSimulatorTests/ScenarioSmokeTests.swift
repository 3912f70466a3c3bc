import ChatServer
import ChatTestSupport
import Foundation
import HummingbirdTesting
import Synchronization
import Testing

@testable import ChatSimulator

/// A short live run of every scenario against a real server on a free loopback port, with
/// real WebSocket connections: each must set itself up, run and pass its own checks. Seconds,
/// and no timing assertions: speed is measured by `scripts/bench`, not here.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ScenarioSmokeTests {
    static let overrides = ["CHAT_WS_SEND_RATE": "100000", "CHAT_WS_SEND_BURST": "100000"]

    func options(_ api: APITestClient) throws -> SimulationOptions {
        var options = SimulationOptions(url: "http://127.0.0.1:\(try #require(api.client.port))")
        options.warmup = .milliseconds(200)
        options.duration = .seconds(1)
        options.seed = 1
        // The server runs in this process: sampling it exercises the /proc readings.
        options.serverPIDs = [getpid()]
        return options
    }

    func expectClean(_ report: Report) {
        #expect(report.passed, "\(report.text)")
        // A late delivery (received when the device asked again after the drain) is timing, not
        // a fault: a loaded machine may make one, and the report says how late.
        var check = report.check
        check.late = 0
        #expect(check == CheckReport(), "\(report.text)")
        #expect(report.deviceFailures.isEmpty)
        #expect(report.server.map(\.pid) == [getpid()])
    }

    @Test func fanout() async throws {
        try await TestApp.run(testing: .live, overrides: Self.overrides) { api in
            var scenario = Fanout()
            scenario.members = 5
            scenario.senders = 2
            scenario.pace = .window(4)
            var options = try options(api)
            let progressLines = Mutex<[String]>([])
            options.progress = { line in progressLines.withLock { $0.append(line) } }
            let report = try await scenario.run(options)
            expectClean(report)
            let lines = progressLines.withLock { $0 }
            #expect(
                lines.contains {
                    $0.contains("\(report.devices)/\(report.devices) devices") && $0.contains("delivered")
                }, "\(lines)")
            let rates = try #require(report.rates)
            #expect(rates.stored > 0)
            // Every stored message reaches all five members (the sender by its ack).
            #expect(report.latencies["send_to_delivery"]?.count == 4 * (report.latencies["send_to_ack"]?.count ?? 0))
        }
    }

    @Test func fanoutAcrossTwoNodes() async throws {
        try await TestApp.runNodes(2, overrides: Self.overrides) { nodes in
            var options = try options(nodes[0])
            options.url = try nodes.map { "http://127.0.0.1:\(try #require($0.client.port))" }.joined(separator: ",")
            var scenario = Fanout()
            scenario.members = 6
            scenario.senders = 2
            scenario.pace = .window(4)
            let report = try await scenario.run(options)
            expectClean(report)
            // Devices alternate between the nodes: each sender's message reaches some members
            // on the other node.
            #expect((report.latencies["send_to_delivery_cross_node"]?.count ?? 0) > 0, "\(report.text)")
        }
    }

    @Test func pairs() async throws {
        try await TestApp.run(testing: .live, overrides: Self.overrides) { api in
            var scenario = Pairs()
            scenario.chats = 3
            let report = try await scenario.run(try options(api))
            expectClean(report)
            #expect(report.devices == 6)
            #expect((report.rates?.stored ?? 0) > 0)
        }
    }

    @Test func mixed() async throws {
        try await TestApp.run(testing: .live, overrides: Self.overrides) { api in
            var scenario = Mixed()
            scenario.users = 10
            scenario.groupSize = 5
            scenario.rate = 10
            scenario.historyReadsPerSecond = 5
            scenario.reconnectsPerSecond = 3
            scenario.changesPerSecond = 10
            scenario.deleteShare = 0.3
            scenario.searchesPerSecond = 5
            let report = try await scenario.run(try options(api))
            expectClean(report)
            #expect(report.latencies["history"] != nil)
            #expect(report.latencies["reconnect"] != nil)
            #expect(report.latencies["edit_or_delete"] != nil, "messages were changed, and every device converged")
            #expect(report.latencies["search"] != nil)
        }
    }

    @Test func search() async throws {
        try await TestApp.run(testing: .live) { api in
            var scenario = SearchLatency(database: api.database)
            scenario.messages = 2000
            scenario.chats = 4
            scenario.vocabulary = 50
            scenario.requests = 5
            let report = try await scenario.run(try options(api))
            expectClean(report)
            #expect(report.latencies["search_one_word"]?.count == 5 && report.latencies["search_two_words"]?.count == 5)
            #expect(report.notes.contains("search_one_word: 20.0 results a page on average"), "\(report.notes)")
        }
    }

    @Test func searchWordsAreDistinct() {
        let words = SearchLatency.words(2000)
        #expect(Set(words).count == 2000 && words[0] == "kakaka" && words[1] == "какака")
    }

    @Test func history() async throws {
        try await TestApp.run(testing: .live) { api in
            var scenario = HistoryDepths(database: api.database)
            scenario.messages = 1000
            scenario.pageSize = 50
            scenario.requests = 5
            let report = try await scenario.run(try options(api))
            expectClean(report)
            #expect(report.history?.count == 6)
            #expect(report.history?.allSatisfy { $0.latency.count == 5 } == true)
        }
    }

    @Test func connections() async throws {
        try await TestApp.run(testing: .live) { api in
            var scenario = IdleConnections()
            scenario.connections = 25
            scenario.perUser = 10
            var options = try options(api)
            options.duration = .milliseconds(300)
            let report = try await scenario.run(options)
            expectClean(report)
            #expect(report.connections?.connected == 25)
        }
    }

    @Test func reconnect() async throws {
        try await TestApp.run(testing: .live, overrides: Self.overrides) { api in
            var scenario = Reconnect()
            scenario.users = 12
            scenario.chatSize = 6
            scenario.rate = 20
            scenario.jitter = .milliseconds(300)
            let report = try await scenario.run(try options(api))
            expectClean(report)
            #expect(report.recovery?.recovered == 12)
        }
    }

    @Test func rateLimitedSendsAreRepeatedAndReported() async throws {
        // The server's default rate limit (20 a second, bursts of 40) refuses most of a window
        // of 50: each refused send is repeated after retry_after_ms, and every send is stored.
        try await TestApp.run(testing: .live) { api in
            var scenario = Fanout()
            scenario.members = 2
            scenario.senders = 1
            scenario.pace = .window(50)
            let report = try await scenario.run(try options(api))
            #expect(report.verdict == .throttled && !report.passed, "\(report.text)")
            #expect(report.text.hasPrefix("chatsim fanout: THROTTLED"))
            // A late delivery (received when the device asked again after the drain) is timing, not
            // a fault: a loaded machine may make one, and the report says how late.
            var check = report.check
            check.late = 0
            #expect(check == CheckReport(), "\(report.text)")
            let throttling = try #require(report.throttling)
            #expect((report.rates?.rateLimited ?? 0) > 0, "\(report.text)")
            #expect(throttling.refused["rate_limited"] == report.rates?.rateLimited && throttling.isThrottled)
            #expect(
                report.notes.contains { $0.contains("CHAT_WS_SEND_RATE") && $0.contains("--allow-throttling") },
                "\(report.notes)")

            var allowing = try options(api)
            allowing.allowThrottling = true
            let allowed = try await scenario.run(allowing)
            expectClean(allowed)
            #expect(allowed.throttling?.isThrottled == true && !allowed.notes.contains { $0.contains("--allow-") })
        }
    }

    @Test func badSettingsAndUnreachableServersFailClearly() async throws {
        var unreachable = SimulationOptions(url: "http://127.0.0.1:1")
        unreachable.serverWait = .milliseconds(500)
        var tooManySenders = Fanout()
        tooManySenders.senders = 51
        await #expect(throws: SimulationError.self) {
            _ = try await tooManySenders.run(unreachable)
        }
        #expect(throws: SimulationError.self) { try Endpoint(url: "ftp://127.0.0.1:8000") }
        #expect(throws: SimulationError.self) { try Endpoint(url: "http://127.0.0.1:8000/api") }
        // Nothing listens on port 1: chatsim waits a moment for a server that may be starting.
        let error = await #expect(throws: SimulationError.self) { _ = try await Fanout().run(unreachable) }
        #expect(error?.description.hasPrefix("cannot reach the server at http://127.0.0.1:1") == true)
    }

    @Test func thresholdsDecideTheVerdict() {
        var options = SimulationOptions(url: "http://127.0.0.1:1")
        options.maxP99Milliseconds = 10
        options.minRate = 1000
        var report = Report.example
        report.judge(latency: "send_to_delivery", p99: 12, rate: "frames/s", perSecond: 2000, options: options)
        #expect(!report.passed)
        #expect(report.thresholds.map(\.met) == [false, true])

        var met = Report.example
        met.judge(latency: "send_to_delivery", p99: 8, rate: "frames/s", perSecond: 2000, options: options)
        #expect(met.passed)

        // Throttling above 1% of the attempts decides the verdict when nothing else failed.
        for (refused, allowed, p99, verdict) in [
            (2, false, 8.0, Report.Verdict.throttled), (1, false, 8, .passed), (2, true, 8, .passed),
            (2, false, 12, .failed),
        ] {
            var throttled = Report.example
            throttled.throttling = .init(refused: ["rate_limited": refused], attempts: 100, allowed: allowed)
            throttled.judge(latency: "send_to_delivery", p99: p99, rate: "frames/s", perSecond: 2000, options: options)
            #expect(throttled.verdict == verdict && throttled.passed == (verdict == .passed), "\(throttled.text)")
        }

        var nothingMeasured = Report.example
        nothingMeasured.judge(latency: "send_to_delivery", p99: nil, rate: "frames/s", perSecond: nil, options: options)
        #expect(!nothingMeasured.passed)
        #expect(throws: Never.self) { try nothingMeasured.json() }
    }
}

extension Report {
    static let example = Report(
        scenario: "fanout", parameters: [:], startedAt: Date(), measuredSeconds: 1, devices: 2, connectSeconds: nil,
        deviceFailures: [:], rates: nil, latencies: [:], history: nil, connections: nil, recovery: nil, server: [],
        simulator: .init(cpuSeconds: 0, cpuCores: 0, threads: 1), check: CheckReport(), thresholds: [], notes: [],
        passed: false)
}
