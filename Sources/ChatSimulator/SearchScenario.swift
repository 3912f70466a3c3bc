import ChatProtocol
import ChatServer
import Histogram
import Logging

/// `search`: many messages of made-up words in many chats, filled through the server's own
/// store, then `GET /search` timed for one-word and two-word queries over all of them. Shows
/// what full-text search costs on a large database.
public struct SearchLatency: Scenario {
    public static let name = "search"
    public var messages = 1_000_000
    public var chats = 100
    /// Distinct words the texts are made of; each text has ``generatedWordsPerMessage`` of them.
    public var vocabulary = 2000
    /// Timed requests per query kind (after 10 untimed ones).
    public var requests = 200
    /// The server's database, which the chats are filled through.
    public var database: DatabaseLocation

    public init(database: DatabaseLocation) {
        self.database = database
    }

    public var parameters: [String: String] {
        [
            "messages": "\(messages)", "chats": "\(chats)", "vocabulary": "\(vocabulary)", "requests": "\(requests)",
            "database": "\(database)",
        ]
    }

    /// Made-up words, Latin and Cyrillic in turn, three syllables each: as many as asked, all
    /// distinct, the same every run.
    static func words(_ count: Int) -> [String] {
        let latin = ["ka", "lo", "mi", "ne", "ra", "su", "ti", "vo", "zu", "be", "do", "fa", "gi", "ho", "ju", "pe"]
        let cyrillic = ["ка", "ло", "ми", "не", "ра", "су", "ти", "во", "зу", "бе", "до", "фа", "ги", "хо", "жу", "пе"]
        return (0..<count).map { index in
            let syllables = index.isMultiple(of: 2) ? latin : cyrillic
            let number = index / 2
            return [number / 256 % 16, number / 16 % 16, number % 16].map { syllables[$0] }.joined()
        }
    }

    public func run(_ options: SimulationOptions) async throws -> Report {
        guard messages >= chats, chats >= 1, (2...8192).contains(vocabulary), requests >= 1 else {
            throw SimulationError("search needs at least one chat, a message per chat, 2–8192 words and a request")
        }
        let words = Self.words(vocabulary)
        return try await Simulation.with(options) { simulation in
            let user = try await simulation.registerUsers(1)[0]
            let chatIDs = try await simulation.concurrently(Array(0..<chats)) { index in
                try await simulation.createChat(.group, named: "search \(simulation.run) \(index)", members: [user])
            }
            let fillStart = ContinuousClock.now
            try await simulation.bulkFill(
                chatIDs, with: messages, from: user, words: words, through: database, log: options.log)
            let fillSeconds = (ContinuousClock.now - fillStart).seconds
            var random = SplitMix64(seed: options.seed)
            let oneWord = (0..<(10 + requests)).map { _ in words.randomElement(using: &random)! }
            let twoWords = (0..<(10 + requests)).map { _ in
                "\(words.randomElement(using: &random)!) \(words.randomElement(using: &random)!)"
            }
            var latencies: [String: Report.LatencySummary] = [:]
            var found: [String: Int] = [:]
            let measurement = try await simulation.measure {
                for (kind, queries) in [("search_one_word", oneWord), ("search_two_words", twoWords)] {
                    var histogram = Histogram<UInt64>(
                        highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
                    for (attempt, query) in queries.enumerated() {
                        let start = monotonicNanoseconds()
                        let hits = try await simulation.api.search(query, limit: 20, as: user)
                        if attempt >= 10 {
                            _ = histogram.record((monotonicNanoseconds() - start) / 1000)
                            found[kind, default: 0] += hits
                        }
                    }
                    latencies[kind] = Report.LatencySummary(microseconds: histogram)
                }
            }
            var report = simulation.report(Self.name, parameters: parameters, measurement: measurement, devices: 0)
            report.latencies = latencies
            report.notes.append("filled \(messages) messages in \(chats) chats in \(format(fillSeconds)) s")
            for (kind, total) in found.sorted(by: { $0.key < $1.key }) {
                report.notes.append("\(kind): \(format(Double(total) / Double(requests))) results a page on average")
            }
            let requestsPerSecond = Double(2 * requests) / max(measurement.seconds, 1e-9)
            report.judge(
                latency: "search_one_word", p99: latencies.values.map(\.p99).max(), rate: "searches/s",
                perSecond: requestsPerSecond, options: options)
            return report
        }
    }
}

extension Simulation {
    /// Fills `chats` with `count` generated messages in all, spread evenly, through the store
    /// at `database` (``BulkMessageFill``): `"message <seq>"` texts, or texts of `words`.
    func bulkFill(
        _ chats: [ChatID], with count: Int, from user: ServerAPI.User, words: [String] = [],
        through database: DatabaseLocation, log: @Sendable (String) -> Void
    ) async throws {
        var logger = Logger(label: "chatsim.store")
        logger.logLevel = .warning
        let store = try await makeStore(for: database, poolSize: 2, logger: logger)
        guard let bulk = store as? any BulkMessageFill else {
            throw SimulationError("\(database) cannot be filled in bulk")
        }
        try await withRunningStore(store) { _ in
            var stored = 0
            for (index, chat) in chats.enumerated() {
                var left = count / chats.count + (index < count % chats.count ? 1 : 0)
                while left > 0 {
                    let batch = min(100_000, left)
                    _ = try await bulk.appendGeneratedMessages(batch, to: chat, from: user.id, words: words)
                    left -= batch
                    stored += batch
                    log("filled \(stored) of \(count) messages")
                }
            }
            try await bulk.refreshStatistics()
        }
    }
}
