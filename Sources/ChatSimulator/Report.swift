import ChatProtocol
import Foundation
import Histogram

/// What a run measured and concluded: printed for people, written as JSON for machines.
public struct Report: Codable, Sendable {
    public var scenario: String
    /// The scenario's settings, as given or defaulted.
    public var parameters: [String: String]
    public var startedAt: Date
    /// Length of the measured window.
    public var measuredSeconds: Double
    /// Simulated devices (WebSocket connections) that took part.
    public var devices: Int
    /// Time from the first connection attempt until every device was ready.
    public var connectSeconds: Double?
    /// Devices whose connection failed or ended unasked, by reason.
    public var deviceFailures: [String: Int]
    public var rates: Rates?
    /// Latency distributions by name (`send_to_ack`, `send_to_delivery`, `connect`, ...).
    /// `accepted_send_to_ack`, present when sends were refused with `overloaded`, runs from
    /// the attempt the server accepted; `send_to_ack` from the first attempt.
    public var latencies: [String: LatencySummary]
    /// `history`: latency by depth.
    public var history: [HistoryDepth]?
    /// `connections`: memory per connection.
    public var connections: ConnectionCost?
    /// `reconnect`: how long recovering took.
    public var recovery: Recovery?
    /// `--ride-out`: what the devices rode out.
    public var faults: Faults?
    /// `--then-rate`: when the senders switched rate, and the server's memory then.
    public var rateChange: RateChange?
    /// Each `--server-pid` over the measured window.
    public var server: [ProcessUsage]
    public var simulator: SimulatorUsage
    public var check: CheckReport
    public var thresholds: [Threshold]
    /// Observations worth a reader's attention, such as a simulator that was itself the limit.
    public var notes: [String]
    /// Sends the server refused to throttle the run; nil when the run made no send.
    public var throttling: Throttling?
    /// Whether the run passed: `verdict` is `.passed`. Kept for the scripts that read the JSON.
    public internal(set) var passed = false
    public internal(set) var verdict = Verdict.failed

    /// How a run ended.
    public enum Verdict: String, Codable, Sendable {
        /// Nothing lost, repeated or reordered, every device stayed connected, every threshold met.
        case passed = "PASSED"
        /// As `passed`, but the server refused more than 1% of the sends to throttle the run:
        /// it measured the server's limits, not its speed (unless `--allow-throttling`).
        case throttled = "THROTTLED"
        case failed = "FAILED"
    }

    /// The sends a server refused to throttle the run: `rate_limited` (a connection's send rate)
    /// and `storage_unavailable` (the database did not answer in time; not counted in a
    /// `--ride-out` run, whose outages cause it on purpose). Refused sends are repeated, so
    /// every refusal is one more attempt.
    public struct Throttling: Codable, Sendable {
        /// Refusals over the whole run, by error code.
        public var refused: [String: Int]
        /// Send attempts over the whole run, repeats included.
        public var attempts: Int
        /// Whether `--allow-throttling` accepts a throttled run.
        public var allowed: Bool

        /// Share of attempts above which the run counts as throttled.
        static let limit = 0.01

        /// Refusals over attempts.
        public var share: Double { attempts > 0 ? Double(refused.values.reduce(0, +)) / Double(attempts) : 0 }
        public var isThrottled: Bool { share > Self.limit }

        /// What the throttling means, and the server settings to raise for a benchmark.
        var explanation: String {
            let codes = refused.filter { $0.value > 0 }.sorted { $0.key < $1.key }
            var sentence =
                "the server throttled this run: it refused \(refused.values.reduce(0, +)) of \(attempts) send attempts "
                + "(\(format(share * 100))%) as " + codes.map { "\($0.key) (\($0.value))" }.joined(separator: " and ")
                + ", so the rates show its limits, not its speed."
            if refused[ErrorCode.rateLimited.rawValue, default: 0] > 0 {
                sentence +=
                    " For a benchmark, start the server with a higher per-connection send rate, e.g. "
                    + "CHAT_WS_SEND_RATE=100000 CHAT_WS_SEND_BURST=100000."
            }
            if refused[ErrorCode.storageUnavailable.rawValue, default: 0] > 0 {
                sentence += " storage_unavailable means its database did not answer in time: see the server's log."
            }
            if !allowed { sentence += " --allow-throttling accepts such a run." }
            return sentence
        }
    }

    /// Messages and frames over the measured window.
    public struct Rates: Codable, Sendable {
        /// Sends made.
        public var sent: Int
        /// Sends acknowledged for the first time: messages stored.
        public var stored: Int
        /// `message` frames and first acks received by all devices.
        public var deliveredFrames: Int
        /// Sends refused with `overloaded` (nothing stored) and repeated after the server's
        /// `retry_after_ms`, over the whole run.
        public var overloaded: Int
        /// Sends refused with `rate_limited` (the connection's send rate) and repeated the
        /// same way, over the whole run.
        public var rateLimited: Int
        /// Sends rate-paced devices skipped while measuring because they were backing off
        /// (a refused send waited to be repeated).
        public var heldBack: Int
        public var sentPerSecond: Double
        public var storedPerSecond: Double
        public var deliveredFramesPerSecond: Double
    }

    /// A latency distribution in milliseconds.
    public struct LatencySummary: Codable, Sendable {
        public var count: UInt64
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var p999: Double
        public var max: Double

        /// From a histogram of microseconds.
        init(microseconds histogram: Histogram<UInt64>) {
            func milliseconds(_ value: UInt64) -> Double { Double(value) / 1000 }
            count = histogram.totalCount
            p50 = milliseconds(histogram.valueAtPercentile(50))
            p90 = milliseconds(histogram.valueAtPercentile(90))
            p99 = milliseconds(histogram.valueAtPercentile(99))
            p999 = milliseconds(histogram.valueAtPercentile(99.9))
            max = milliseconds(histogram.max)
        }
    }

    /// History latency at one depth.
    public struct HistoryDepth: Codable, Sendable {
        /// The query, e.g. `offset=500000&limit=100` or `before_seq=1000001&limit=100`.
        public var query: String
        public var latency: LatencySummary
    }

    public struct ConnectionCost: Codable, Sendable {
        public var connected: Int
        /// Growth of the first server process's resident memory per connection.
        public var serverRSSBytesPerConnection: Double?
        public var connectionsPerSecond: Double
    }

    public struct Recovery: Codable, Sendable {
        /// From dropping every connection until every device was connected and resumed.
        public var allRecoveredSeconds: Double
        /// Connection attempts made while recovering (failed ones are retried with backoff).
        public var attempts: Int
        public var recovered: Int
    }

    /// What the devices of a `--ride-out` run went through.
    public struct Faults: Codable, Sendable {
        /// Connections that ended unasked.
        public var connectionsLost: Int
        /// Of those, reconnected and resumed.
        public var recovered: Int
        /// Connection attempts made while recovering.
        public var attempts: Int
        /// Seconds the slowest recovery took.
        public var slowestRecoverySeconds: Double?
        /// Sends refused with `storage_unavailable` and repeated with their client id.
        public var sendsRepeated: Int
    }

    /// The senders' switch to another rate within the measured window. `accepted_send_to_ack`
    /// then covers the sends before it, and `settled_send_to_ack` those made from 5 s after it.
    public struct RateChange: Codable, Sendable {
        public var afterSeconds: Double
        public var rate: Double
        /// The first server process's resident memory at the switch.
        public var serverRSSBytesAtChange: UInt64?
    }

    /// One server process over the measured window.
    public struct ProcessUsage: Codable, Sendable {
        public var pid: Int32
        public var command: String
        public var cpuSeconds: Double
        /// Share of one core.
        public var cpuCores: Double
        public var cpuMicrosecondsPerDeliveredFrame: Double?
        public var cpuMicrosecondsPerStoredMessage: Double?
        public var rssBytesBefore: UInt64
        public var rssBytesAfter: UInt64
    }

    public struct SimulatorUsage: Codable, Sendable {
        public var cpuSeconds: Double
        /// Share of one core over the measured window.
        public var cpuCores: Double
        public var threads: Int
    }

    /// A threshold given on the command line and whether the run met it.
    public struct Threshold: Codable, Sendable {
        public var name: String
        public var limit: Double
        /// Nil when the run measured nothing to compare.
        public var measured: Double?
        public var met: Bool
    }

    /// The report as JSON, keys in snake case.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The report for people.
    public var text: String {
        var lines = ["chatsim \(scenario): \(verdict.rawValue)"]
        lines.append(
            "  parameters: "
                + parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        lines.append("  devices: \(devices)" + (connectSeconds.map { ", all ready in \(format($0)) s" } ?? ""))
        for (reason, count) in deviceFailures.sorted(by: { $0.key < $1.key }) {
            lines.append("  device failures: \(count) × \(reason)")
        }
        lines.append("  measured: \(format(measuredSeconds)) s")
        if let rates {
            lines.append(
                "  sent \(rates.sent) (\(format(rates.sentPerSecond))/s), stored \(rates.stored) "
                    + "(\(format(rates.storedPerSecond))/s), delivered frames \(rates.deliveredFrames) "
                    + "(\(format(rates.deliveredFramesPerSecond))/s)"
                    + (rates.overloaded > 0 ? ", \(rates.overloaded) sends refused as overloaded and repeated" : "")
                    + (rates.rateLimited > 0 ? ", \(rates.rateLimited) refused as rate_limited and repeated" : "")
                    + (rates.heldBack > 0 ? ", \(rates.heldBack) held back meanwhile" : ""))
        }
        for (name, latency) in latencies.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(name) ms: \(latency.line)")
        }
        for depth in history ?? [] {
            lines.append("  history \(depth.query) ms: \(depth.latency.line)")
        }
        if let connections {
            lines.append(
                "  connections: \(connections.connected) at \(format(connections.connectionsPerSecond))/s"
                    + (connections.serverRSSBytesPerConnection.map { ", server RSS \(format($0 / 1024)) KiB each" }
                        ?? ""))
        }
        if let recovery {
            lines.append(
                "  recovery: \(recovery.recovered) devices in \(format(recovery.allRecoveredSeconds)) s, "
                    + "\(recovery.attempts) connection attempts")
        }
        if let faults {
            lines.append(
                "  faults: \(faults.connectionsLost) connections lost, \(faults.recovered) recovered in "
                    + "\(faults.attempts) attempts"
                    + (faults.slowestRecoverySeconds.map { " (slowest \(format($0)) s)" } ?? "")
                    + ", \(faults.sendsRepeated) sends repeated after storage_unavailable")
        }
        for process in server {
            var line = "  server pid \(process.pid) (\(process.command)): \(format(process.cpuSeconds)) CPU s "
            line += "(\(format(process.cpuCores)) cores)"
            if let perFrame = process.cpuMicrosecondsPerDeliveredFrame { line += ", \(format(perFrame)) µs/frame" }
            if let perMessage = process.cpuMicrosecondsPerStoredMessage { line += ", \(format(perMessage)) µs/message" }
            line += ", RSS \(format(Double(process.rssBytesBefore) / 1_048_576))"
            line += " → \(format(Double(process.rssBytesAfter) / 1_048_576)) MiB"
            lines.append(line)
        }
        lines.append(
            "  simulator: \(format(simulator.cpuSeconds)) CPU s (\(format(simulator.cpuCores)) cores, "
                + "\(simulator.threads) threads)")
        let errors = check.sendErrors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        lines.append(
            "  check: lost=\(check.lost) late=\(check.late) duplicated=\(check.duplicated) reordered=\(check.reordered) "
                + "gaps=\(check.gaps) unexpected=\(check.unexpected) conflicting_acks=\(check.conflictingAcks) "
                + "unanswered=\(check.unanswered) divergent=\(check.divergent) stale_updates=\(check.staleUpdates) "
                + "send_errors=[\(errors)]")
        lines += check.lostExamples.map { "  lost: \($0)" }
        lines += check.gapExamples.map { "  gap: \($0)" }
        lines += check.divergentExamples.map { "  divergent: \($0)" }
        for threshold in thresholds {
            lines.append(
                "  threshold \(threshold.name) \(format(threshold.limit)): measured "
                    + (threshold.measured.map(format) ?? "nothing") + " "
                    + (threshold.met ? "met" : "MISSED"))
        }
        lines += notes.map { "  note: \($0)" }
        return lines.joined(separator: "\n")
    }
}

extension Report.LatencySummary {
    var line: String {
        "p50 \(format(p50)) p90 \(format(p90)) p99 \(format(p99)) p99.9 \(format(p999)) max \(format(max)) (n=\(count))"
    }
}

/// A number with three significant digits at most, for reports.
func format(_ value: Double) -> String {
    guard value.isFinite else { return "\(value)" }
    let magnitude = abs(value)
    let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : 3
    return String(format: "%.\(decimals)f", value)
}
