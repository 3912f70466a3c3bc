import ChatServer
import Testing

@testable import ChatTestSupport

/// The test database support itself: many tests asking at once must share one server.
@Suite("Throwaway PostgreSQL", .timeLimit(.minutes(5)))
struct TestPostgresTests {
    @Test func aHundredCallersAtOnceShareOneStart() async throws {
        // An instance of its own, so that its start is under way while they all ask.
        let postgres = TestPostgres()
        let locations = try await withThrowingTaskGroup(of: PostgresLocation.self) { group in
            for _ in 0..<100 { group.addTask { try await postgres.makeDatabase() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(locations.map(\.port)).count == 1, "one server for every caller")
        #expect(Set(locations.map(\.database)).count == 100, "a database of its own for each")
        for location in locations { try await postgres.dropDatabase(location) }
    }
}
