import ChatConformance
import ChatProtocol
import ChatTestSupport
import HummingbirdTesting
import Testing

@Suite("Real-time on PostgreSQL", .timeLimit(.minutes(5)))
struct RealtimePostgresTests {
    @Test("honors the real-time contract", arguments: RealtimeContract.checks)
    func honorsContract(_ check: RealtimeCheck) async throws {
        try await TestApp.run(on: .postgres, testing: .live) { api in
            try await check.run(RealtimeFixture(api: api, ports: [try #require(api.client.port)]))
        }
    }

    /// One server for every check, as `chatsim verify` runs them: a database per check would
    /// need more connections than the test cluster has while the whole suite runs. Started as
    /// a cluster of one node (a pool of 6, ready before the checks start), as the two-node
    /// tests are, so the whole suite holds fewer of the test cluster's connections.
    @Test func passesTheConformanceChecks() async throws {
        try await TestApp.runNodes(1) { nodes in
            try await ConformanceSuite.expectPasses(
                ConformanceSuite.checks.filter { $0.nodes == 1 }, ports: [try #require(nodes[0].client.port)])
        }
    }
}
