import Synchronization

/// The phases of a run, which every simulated device follows.
enum Phase: UInt8, Comparable, Sendable {
    /// Devices connect and report ready.
    case connecting
    /// Senders send; nothing is measured yet.
    case warmup
    /// Senders send; rates and latencies are recorded.
    case measuring
    /// Senders start no new sends; outstanding ones complete and deliveries settle.
    case draining
    /// Devices close their connections.
    case finished

    static func < (lhs: Phase, rhs: Phase) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Shared by the coordinator and every device: the current phase and the measured window.
final class RunControl: Sendable {
    private let current = Atomic<UInt8>(Phase.connecting.rawValue)
    private let windowStart = Atomic<UInt64>(.max)
    private let windowEnd = Atomic<UInt64>(.max)
    private let rateChange = Atomic<UInt64>(.max)

    /// The current phase; a relaxed atomic read, cheap enough for every frame.
    var phase: Phase { Phase(rawValue: current.load(ordering: .relaxed)) ?? .finished }

    /// Enters `phase`; entering `measuring` and `draining` opens and closes the measured window.
    func enter(_ phase: Phase) {
        switch phase {
        case .measuring: windowStart.store(monotonicNanoseconds(), ordering: .relaxed)
        case .draining: windowEnd.store(monotonicNanoseconds(), ordering: .relaxed)
        default: break
        }
        current.store(phase.rawValue, ordering: .relaxed)
    }

    /// Notes that the senders switched rate now (`SimulationOptions.rateChange`).
    func rateChanged() {
        rateChange.store(monotonicNanoseconds(), ordering: .relaxed)
    }

    /// Where a send made at `sentAt` stands to the rate change: before it (or no change was
    /// made), during the 5 s after it, or once the server had those 5 s to settle.
    func sinceRateChange(sentAt: UInt64) -> RateChangeStage {
        let change = rateChange.load(ordering: .relaxed)
        if sentAt < change { return .before }
        return sentAt - change < 5_000_000_000 ? .settling : .settled
    }

    /// Whether a send made at `sentAt` (monotonic nanoseconds) was made in the measured window.
    func isMeasured(sentAt: UInt64) -> Bool {
        sentAt >= windowStart.load(ordering: .relaxed) && sentAt < windowEnd.load(ordering: .relaxed)
    }
}

/// A send's place relative to a change of the senders' rate.
enum RateChangeStage {
    case before, settling, settled
}

/// Progress counters of one device that the coordinator reads while the device runs.
final class DeviceProgress: Sendable {
    /// Messages received (message frames and own acks).
    let received = Atomic<Int>(0)
    /// Own sends the server stored and acknowledged (the first ack of each).
    let acked = Atomic<Int>(0)
    /// Sends without an answer yet.
    let outstanding = Atomic<Int>(0)
    /// Whether the device's connection is past `ready`.
    let connected = Atomic<Bool>(false)
    /// Chats whose `resume` has not completed yet.
    let resuming = Atomic<Int>(0)
    /// Why the device's connection ended when nobody asked it to, if it did.
    let failure = Mutex<String?>(nil)
}
