import Foundation
import Testing

/// docs/benchmarks.md's prose about the targets quotes no measured figure: the figures live in
/// the tables `scripts/bench` writes from its JSON reports, so the prose cannot drift from them
/// when they are regenerated. A target's own name (in bold) may carry its bound.
@Suite("Benchmark document")
struct BenchmarkProseTests {
    @Test func theTargetsProseQuotesNoFigure() throws {
        let document = try RepositoryFile.text("docs/benchmarks.md")
        let heading = "### The targets, one by one\n"
        let start = try #require(document.range(of: heading)).upperBound
        let end = document[start...].range(of: "\n### ")?.lowerBound ?? document.endIndex
        // The prose without the targets' names, which are in bold.
        let prose = document[start..<end].split(separator: "**", omittingEmptySubsequences: false).enumerated()
            .filter { $0.offset % 2 == 0 }.map(\.element).joined(separator: " ")
        let figure = try Regex(#"\d[\d,.]*\s?(frames/s|messages/s|/s|ms|µs|KiB|MiB|KB|MB|s\b|×|%|cores)"#)
        let quoted = prose.matches(of: figure).map { String(prose[$0.range]) }
        #expect(quoted.isEmpty, "figures in the prose instead of the tables: \(quoted)")
    }
}
