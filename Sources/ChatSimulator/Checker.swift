/// What one simulated device received of one chat, kept by the device while the run goes on
/// (no locks on the hot path) and checked at the end.
///
/// A device's stream of a chat is strictly `start + 1, start + 2, ...`. Two events restart
/// it: a new connection's `ready` (live delivery continues after its `last_seq`; what was
/// missed meanwhile stays missing) and a `resume` (its first message, `after_seq + 1`, starts
/// the stream again from there, as the protocol defines).
struct ChatStream: Sendable {
    /// Deliveries start after this `seq` (where the device first joined the chat).
    let start: Int64
    /// The highest `seq` of the current stream.
    private(set) var last: Int64
    /// `seq`s skipped over and not (yet) received.
    private(set) var missing: [ClosedRange<Int64>] = []
    private(set) var duplicates = 0
    private(set) var reordered = 0
    private(set) var gaps = 0
    /// The first gaps, for whoever looks into them: where each jumped, and what last restarted
    /// the stream before it.
    private(set) var gapExamples: [String] = []
    /// What last restarted the stream (a `ready`, a `resume`), for ``gapExamples``.
    private var lastRestart = "none"
    /// Message ids by `seq` (index `seq - start - 1`); 0 where none was received.
    private(set) var messageIDs: [Int64] = []
    /// Messages received with an id other than an earlier delivery of the same `seq`.
    private(set) var conflicting = 0
    /// Messages not sent by this run's simulated senders.
    private(set) var foreign = 0
    /// The highest send number received from each simulated sender.
    private(set) var highestNumber: [Int: Int] = [:]
    /// The `after_seq` of a `resume` whose first message has not arrived yet.
    private var pendingResume: Int64?
    /// The chat's edits and deletions are received up to this `update_seq`: the next
    /// `resume`'s `after_update`. Only `message_updated` frames move it.
    private(set) var lastUpdate: Int64
    /// The newest `update_seq` received of each changed message, by message id.
    private(set) var versions: [Int64: Int64] = [:]
    /// `message_updated` frames that brought an older state of a message than one received
    /// before on the same connection: updates out of the order they were made.
    private(set) var staleUpdates = 0
    /// The newest `update_seq` of each message received on the current connection. (Across a
    /// reconnect an older state may come from a node that read it earlier: a client keeps the
    /// newer, and so does ``versions``.)
    private var connectionVersions: [Int64: Int64] = [:]

    init(after position: Int64, lastUpdate: Int64 = 0) {
        start = position
        last = position
        self.lastUpdate = lastUpdate
    }

    /// Records the state of message `messageID` that a frame carried: a `message_updated`
    /// (`isUpdate`), or a message or history entry, which may carry a changed one too.
    mutating func received(messageID: Int64, updateSeq: Int64, isUpdate: Bool) {
        if isUpdate { lastUpdate = max(lastUpdate, updateSeq) }
        guard updateSeq > 0 else { return }
        if isUpdate, let known = connectionVersions[messageID], known > updateSeq { staleUpdates += 1 }
        connectionVersions[messageID] = max(connectionVersions[messageID] ?? 0, updateSeq)
        versions[messageID] = max(versions[messageID] ?? 0, updateSeq)
    }

    /// A new connection's live delivery continues after `position`.
    mutating func reconnected(liveAfter position: Int64) {
        connectionVersions = [:]
        lastRestart = "a ready at \(position) with \(last) received"
        guard position > last else { return }
        missing.append((last + 1)...position)
        last = position
    }

    /// A `resume` from `position` was sent.
    mutating func resuming(after position: Int64) {
        pendingResume = position
        lastRestart = "a resume after \(position) with \(last) received"
    }

    /// The server refused the `resume` (what it would have brought stays missing), or ended it
    /// without a message: nothing restarts the stream.
    mutating func resumeRefused() {
        pendingResume = nil
    }

    /// Whether `seq` was received (and is not a hole the stream still waits for).
    func holds(_ seq: Int64) -> Bool {
        seq > start && seq <= last && !missing.contains { $0.contains(seq) }
    }

    /// Whether a `resume` is under way.
    var isResuming: Bool { pendingResume != nil }

    /// Whether the `resume` under way will bring `seq` in its place. The `ack` of a send made
    /// before the resume may arrive first (docs/protocol.md, "Pipelining"): it is no delivery
    /// in the stream's order.
    func resumeBrings(_ seq: Int64) -> Bool {
        pendingResume.map { seq > $0 } ?? false
    }

    /// The `after_seq` of the `resume` under way.
    var resumePosition: Int64? { pendingResume }

    /// Records the delivery of message `messageID` at `seq`; `clientID` names its simulated
    /// sender, nil for messages from elsewhere.
    mutating func record(seq: Int64, messageID: Int64, clientID: ClientID?, run: UInt32) {
        if let position = pendingResume, seq == position + 1 {
            pendingResume = nil
            last = position
            missing.removeAll { $0.lowerBound > position }
            missing = missing.map { $0.upperBound > position ? $0.lowerBound...position : $0 }
        }
        if seq == last + 1 {
            last = seq
        } else if seq > last + 1 {
            gaps += 1
            if gapExamples.count < 3 {
                gapExamples.append(
                    "after \(last) came \(seq)" + (pendingResume.map { ", resuming after \($0)" } ?? "")
                        + "; last restart: \(lastRestart)")
            }
            missing.append((last + 1)...(seq - 1))
            last = seq
        } else if let index = missing.firstIndex(where: { $0.contains(seq) }) {
            // Late: it arrives after a higher seq.
            reordered += 1
            fillHole(at: index, with: seq)
        } else if seq > start {
            duplicates += 1
        }
        remember(seq: seq, messageID: messageID, clientID: clientID, run: run)
    }

    /// Records a message read from `/history` to fill what a reconnect skipped: it closes a
    /// hole without counting as a late delivery.
    mutating func filled(seq: Int64, messageID: Int64, clientID: ClientID?, run: UInt32) {
        guard seq > start, seq <= last else { return }
        if let index = missing.firstIndex(where: { $0.contains(seq) }) { fillHole(at: index, with: seq) }
        remember(seq: seq, messageID: messageID, clientID: clientID, run: run)
    }

    private mutating func fillHole(at index: Int, with seq: Int64) {
        let range = missing.remove(at: index)
        if range.lowerBound < seq { missing.append(range.lowerBound...(seq - 1)) }
        if seq < range.upperBound { missing.append((seq + 1)...range.upperBound) }
    }

    private mutating func remember(seq: Int64, messageID: Int64, clientID: ClientID?, run: UInt32) {
        if let clientID, clientID.run == run {
            highestNumber[clientID.sender] = max(highestNumber[clientID.sender] ?? 0, clientID.number)
        } else {
            foreign += 1
        }
        guard seq > start else { return }
        let index = Int(seq - start - 1)
        if index >= messageIDs.count {
            messageIDs.append(contentsOf: repeatElement(0, count: index - messageIDs.count + 1))
        }
        if messageIDs[index] != 0 && messageIDs[index] != messageID { conflicting += 1 }
        messageIDs[index] = messageID
    }

    /// The `seq`s after the start and up to `end` that were never received.
    func neverReceived(upTo end: Int64) -> [ClosedRange<Int64>] {
        (missing + (end > last ? [(last + 1)...end] : [])).sorted { $0.lowerBound < $1.lowerBound }
    }
}

/// What one simulated sender sent and how each send ended.
struct SendLog: Sendable {
    /// An acknowledged send.
    struct Ack: Equatable, Sendable {
        let messageID: Int64
        let chatID: Int64
        let seq: Int64
    }

    /// Sends made, numbered 0, 1, 2, ...
    private(set) var sent = 0
    /// Acknowledged sends by number.
    private(set) var acks: [Int: Ack] = [:]
    /// Acks that named another message than an earlier ack of the same send.
    private(set) var conflictingAcks = 0
    /// Acks with `"duplicate": true` (answers to a repeated send).
    private(set) var duplicateAcks = 0
    /// Refused sends by error code.
    private(set) var errors: [String: Int] = [:]
    private(set) var refused: Set<Int> = []

    /// Numbers a new send.
    mutating func nextNumber() -> Int {
        defer { sent += 1 }
        return sent
    }

    /// Records an ack; returns whether it is the send's first.
    @discardableResult
    mutating func acked(number: Int, _ ack: Ack, duplicate: Bool) -> Bool {
        if duplicate { duplicateAcks += 1 }
        if let earlier = acks[number] {
            if earlier != ack { conflictingAcks += 1 }
            return false
        }
        acks[number] = ack
        return true
    }

    mutating func refused(number: Int, code: String) {
        errors[code, default: 0] += 1
        refused.insert(number)
    }

    /// Sends that got neither an ack nor an error.
    var unanswered: Int { sent - acks.count - refused.subtracting(acks.keys).count }
}

/// The verdict on a run, in Jepsen's spirit: every count is reported, zero or not.
public struct CheckReport: Codable, Equatable, Sendable {
    /// Acknowledged messages some device following the chat never received.
    public var lost: Int64 = 0
    /// Messages a device received twice.
    public var duplicated = 0
    /// Messages received after a higher `seq`.
    public var reordered = 0
    /// Jumps over one or more `seq`s.
    public var gaps = 0
    /// Messages no simulated sender of this run sent, or with another id than the one
    /// acknowledged or delivered before for the same `seq`.
    public var unexpected = 0
    /// Sends acknowledged twice with different messages.
    public var conflictingAcks = 0
    /// Sends that ended without an ack or an error (not a violation by itself).
    public var unanswered = 0
    /// Refused sends by error code (not a violation by itself).
    public var sendErrors: [String: Int] = [:]
    /// Where the first losses were, for whoever looks into them: device, chat, `seq`s.
    public var lostExamples: [String] = []
    /// Where the first gaps were: device, chat, the jump, and what restarted the stream before.
    public var gapExamples: [String] = []
    /// Edited or deleted messages a device holds in another state than the server's final one:
    /// it missed the last change. Every device must converge on the same state.
    public var divergent = 0
    /// Updates that arrived after a newer state of the same message.
    public var staleUpdates = 0
    /// Where the first divergences were: device, chat, message, the states.
    public var divergentExamples: [String] = []
    /// Acknowledged messages a device had not received when the run drained but that arrived
    /// when it asked again: late, not lost (see `Simulation.reconcile`). Not a failure by
    /// itself; `late_delivery` in the latencies says how late.
    public var late = 0

    public var passed: Bool {
        lost == 0 && duplicated == 0 && reordered == 0 && gaps == 0 && unexpected == 0 && conflictingAcks == 0
            && divergent == 0 && staleUpdates == 0
    }

    enum CodingKeys: String, CodingKey {
        case lost, late, duplicated, reordered, gaps, unexpected, unanswered, passed, divergent
        case conflictingAcks = "conflicting_acks"
        case sendErrors = "send_errors"
        case lostExamples = "lost_examples"
        case gapExamples = "gap_examples"
        case staleUpdates = "stale_updates"
        case divergentExamples = "divergent_examples"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        lost = try container.decode(Int64.self, forKey: .lost)
        duplicated = try container.decode(Int.self, forKey: .duplicated)
        reordered = try container.decode(Int.self, forKey: .reordered)
        gaps = try container.decode(Int.self, forKey: .gaps)
        unexpected = try container.decode(Int.self, forKey: .unexpected)
        conflictingAcks = try container.decode(Int.self, forKey: .conflictingAcks)
        unanswered = try container.decode(Int.self, forKey: .unanswered)
        sendErrors = try container.decode([String: Int].self, forKey: .sendErrors)
        lostExamples = try container.decodeIfPresent([String].self, forKey: .lostExamples) ?? []
        gapExamples = try container.decodeIfPresent([String].self, forKey: .gapExamples) ?? []
        late = try container.decodeIfPresent(Int.self, forKey: .late) ?? 0
        divergent = try container.decodeIfPresent(Int.self, forKey: .divergent) ?? 0
        staleUpdates = try container.decodeIfPresent(Int.self, forKey: .staleUpdates) ?? 0
        divergentExamples = try container.decodeIfPresent([String].self, forKey: .divergentExamples) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lost, forKey: .lost)
        try container.encode(late, forKey: .late)
        try container.encode(duplicated, forKey: .duplicated)
        try container.encode(reordered, forKey: .reordered)
        try container.encode(gaps, forKey: .gaps)
        try container.encode(unexpected, forKey: .unexpected)
        try container.encode(conflictingAcks, forKey: .conflictingAcks)
        try container.encode(unanswered, forKey: .unanswered)
        try container.encode(sendErrors, forKey: .sendErrors)
        try container.encode(lostExamples, forKey: .lostExamples)
        try container.encode(gapExamples, forKey: .gapExamples)
        try container.encode(divergent, forKey: .divergent)
        try container.encode(staleUpdates, forKey: .staleUpdates)
        try container.encode(divergentExamples, forKey: .divergentExamples)
        try container.encode(passed, forKey: .passed)
    }
}

/// Checks a run: every device's streams against every sender's log.
enum Checker {
    /// - Parameters:
    ///   - streams: each simulated device's streams, by chat id.
    ///   - senders: each simulated sender's log, by sender index.
    ///   - finalVersions: per chat, the server's final `update_seq` of every changed message
    ///     (`(seq, update_seq)` by message id), when the run changed messages.
    static func check(
        streams: [[Int64: ChatStream]], senders: [Int: SendLog],
        finalVersions: [Int64: [Int64: (seq: Int64, updateSeq: Int64)]] = [:]
    ) -> CheckReport {
        var report = CheckReport()
        // What the acks say each chat holds: message id by seq.
        var acknowledged: [Int64: [Int64: Int64]] = [:]
        for log in senders.values {
            report.conflictingAcks += log.conflictingAcks
            report.unanswered += log.unanswered
            report.sendErrors.merge(log.errors, uniquingKeysWith: +)
            for ack in log.acks.values { acknowledged[ack.chatID, default: [:]][ack.seq] = ack.messageID }
        }
        for (index, device) in streams.enumerated() {
            for (chat, stream) in device.sorted(by: { $0.key < $1.key }) {
                report.duplicated += stream.duplicates
                report.reordered += stream.reordered
                report.gaps += stream.gaps
                for example in stream.gapExamples where report.gapExamples.count < 10 {
                    report.gapExamples.append("device \(index), chat \(chat): \(example)")
                }
                report.unexpected += stream.conflicting + stream.foreign
                let acked = acknowledged[chat] ?? [:]
                let neverReceived = stream.neverReceived(upTo: acked.keys.max() ?? stream.start)
                report.lost += neverReceived.reduce(0) { $0 + Int64($1.count) }
                if !neverReceived.isEmpty && report.lostExamples.count < 10 {
                    let seqs = neverReceived.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0)" }
                    report.lostExamples.append(
                        "device \(index), chat \(chat): seq \(seqs.joined(separator: ", ")) after \(stream.start)")
                }
                for (offset, messageID) in stream.messageIDs.enumerated() where messageID != 0 {
                    if let ackedID = acked[stream.start + 1 + Int64(offset)], ackedID != messageID {
                        report.unexpected += 1
                    }
                }
                for (sender, number) in stream.highestNumber where number >= senders[sender]?.sent ?? 0 {
                    report.unexpected += 1
                }
                report.staleUpdates += stream.staleUpdates
                // Every changed message the device holds must be in its final state.
                for (messageID, final) in finalVersions[chat] ?? [:] where stream.holds(final.seq) {
                    let held = stream.versions[messageID] ?? 0
                    guard held != final.updateSeq else { continue }
                    report.divergent += 1
                    if report.divergentExamples.count < 10 {
                        report.divergentExamples.append(
                            "device \(index), chat \(chat), message \(messageID): update \(held), not \(final.updateSeq)"
                        )
                    }
                }
            }
        }
        return report
    }
}
