import ChatConformance
import ChatProtocol
import Foundation
import Testing

extension ConformanceSuite {
    /// Runs `checks` against the servers at `ports` as `chatsim verify` would, printing each
    /// check's line and time as it ends (so a slow or hung run shows where it is) and recording
    /// each failure at once. A check that skips itself found nothing to judge and passes.
    public static func expectPasses(
        _ checks: [ConformanceCheck] = checks, ports: [Int], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let target = try ConformanceTarget(
            nodes: ports.map { "http://127.0.0.1:\($0)" }, document: try ProtocolDocument.strict.get())
        _ = await run(checks, against: target) { result in
            let line = ConformanceReport.line(result)
            print("conformance \(String(format: "%6.2f s", result.seconds))  \(line)")
            if result.outcome == .failed { Issue.record("\(line)", sourceLocation: sourceLocation) }
        }
    }
}
