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
}
