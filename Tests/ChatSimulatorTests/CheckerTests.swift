import Testing

@testable import ChatSimulator

/// The checker must catch every kind of fault it reports: each test injects one.
@Suite struct CheckerTests {
    static let run: UInt32 = 4242

    /// A stream of `seqs` from a start of 0, each message's id 100 + seq, sent by sender 0.
    func stream(_ seqs: [Int64], after start: Int64 = 0) -> ChatStream {
        var stream = ChatStream(after: start)
        for seq in seqs { stream.record(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run) }
        return stream
    }

    func clientID(_ seq: Int64, sender: Int = 0) -> ClientID {
        ClientID(run: Self.run, sender: sender, number: Int(seq) - 1, sentAt: 1)
    }

    /// Sender 0's log: `count` sends, all acknowledged as seqs 1...count of chat 7.
    func log(acked count: Int) -> SendLog {
        var log = SendLog()
        for number in 0..<count {
            _ = log.nextNumber()
            let seq = Int64(number + 1)
            log.acked(number: number, .init(messageID: 100 + seq, chatID: 7, seq: seq), duplicate: false)
        }
        return log
    }

    func check(_ streams: [ChatStream], acked: Int = 5) -> CheckReport {
        Checker.check(streams: streams.map { [7: $0] }, senders: [0: log(acked: acked)])
    }

    @Test func aCleanRunPasses() {
        let report = check([stream([1, 2, 3, 4, 5]), stream([1, 2, 3, 4, 5])])
        #expect(report == CheckReport())
        #expect(report.passed)
    }

    @Test func catchesADeviceThatMissedTheLastChange() {
        var current = stream([1, 2, 3, 4, 5])
        current.received(messageID: 102, updateSeq: 1, isUpdate: true)
        current.received(messageID: 102, updateSeq: 3, isUpdate: true)
        current.received(messageID: 104, updateSeq: 2, isUpdate: false)
        var behind = stream([1, 2, 3, 4, 5])
        behind.received(messageID: 102, updateSeq: 1, isUpdate: true)
        let final: [Int64: [Int64: (seq: Int64, updateSeq: Int64)]] = [7: [102: (2, 3), 104: (4, 2)]]
        let report = Checker.check(
            streams: [[7: current], [7: behind]], senders: [0: log(acked: 5)], finalVersions: final)
        #expect(report.divergent == 2 && !report.passed, "device 1 holds 102 at update 1 and 104 unchanged")
        #expect(report.divergentExamples.contains("device 1, chat 7, message 102: update 1, not 3"))
        #expect(current.lastUpdate == 3 && behind.lastUpdate == 1, "only update frames move the resume position")
    }

    @Test func catchesAnUpdateOutOfOrder() {
        var updates = stream([1, 2])
        updates.received(messageID: 101, updateSeq: 5, isUpdate: true)
        updates.received(messageID: 101, updateSeq: 4, isUpdate: true)
        updates.received(messageID: 101, updateSeq: 5, isUpdate: true)
        let report = Checker.check(streams: [[7: updates]], senders: [0: log(acked: 2)])
        #expect(report.staleUpdates == 1 && !report.passed, "an older state after a newer one; a repeat is fine")
    }

    @Test func catchesAMessageNeverDelivered() {
        let report = check([stream([1, 2, 3, 4, 5]), stream([1, 2, 4, 5])])
        #expect(report.lost == 1)
        #expect(report.gaps == 1)
        #expect(report.lostExamples == ["device 1, chat 7: seq 3 after 0"])
        #expect(report.gapExamples == ["device 1, chat 7: after 2 came 4; last restart: none"])
        #expect(!report.passed)
    }

    @Test func catchesTheMissingTail() {
        let report = check([stream([1, 2, 3])])
        #expect(report.lost == 2)
        #expect(report.lostExamples == ["device 0, chat 7: seq 4...5 after 0"])
        #expect(report.gaps == 0)
        #expect(!report.passed)
    }

    @Test func catchesADuplicate() {
        let report = check([stream([1, 2, 2, 3, 4, 5])])
        #expect(report.duplicated == 1)
        #expect(report.lost == 0)
        #expect(!report.passed)
    }

    @Test func catchesReordering() {
        let report = check([stream([1, 2, 4, 3, 5])])
        #expect(report.reordered == 1)
        #expect(report.gaps == 1)
        #expect(report.lost == 0)
        #expect(!report.passed)
    }

    @Test func catchesAMessageNobodySent() {
        var foreign = stream([1, 2, 3, 4, 5])
        foreign.record(seq: 6, messageID: 106, clientID: nil, run: Self.run)
        #expect(check([foreign]).unexpected == 1)

        var otherRun = stream([1, 2, 3, 4, 5])
        otherRun.record(
            seq: 6, messageID: 106, clientID: ClientID(run: 1, sender: 0, number: 5, sentAt: 1), run: Self.run)
        #expect(check([otherRun]).unexpected == 1)

        // Numbered beyond what the sender sent.
        var beyond = stream([1, 2, 3, 4])
        beyond.record(seq: 5, messageID: 105, clientID: clientID(9), run: Self.run)
        #expect(check([beyond]).unexpected == 1)
    }

    @Test func catchesAMessageThatIsNotTheOneAcknowledged() {
        var stream = stream([1, 2, 3, 4])
        stream.record(seq: 5, messageID: 999, clientID: clientID(5), run: Self.run)
        let report = check([stream])
        #expect(report.unexpected == 1)
        #expect(!report.passed)
    }

    @Test func catchesAcksThatDisagree() {
        var log = log(acked: 2)
        log.acked(number: 1, .init(messageID: 555, chatID: 7, seq: 9), duplicate: true)
        let report = Checker.check(streams: [[7: stream([1, 2])]], senders: [0: log])
        #expect(report.conflictingAcks == 1)
        #expect(!report.passed)
    }

    @Test func reportsUnansweredAndRefusedSendsWithoutFailing() {
        var log = log(acked: 2)
        _ = log.nextNumber()
        let refused = log.nextNumber()
        log.refused(number: refused, code: "rate_limited")
        let report = Checker.check(streams: [[7: stream([1, 2])]], senders: [0: log])
        #expect(report.unanswered == 1)
        #expect(report.sendErrors == ["rate_limited": 1])
        #expect(report.passed)
    }

    @Test func aResumeAfterAReconnectFillsWhatWasMissed() {
        var device = stream([1, 2])
        device.reconnected(liveAfter: 5)
        device.resuming(after: 2)
        // Live delivery may go on before the server processes the resume; the resume then
        // restarts the stream at 3 and repeats what came live.
        for seq: Int64 in [6, 3, 4, 5, 6, 7] {
            device.record(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run)
        }
        #expect(check([device], acked: 7) == CheckReport())
    }

    @Test func anAckThatComesBeforeTheResumeIsLeftToTheResume() {
        var device = stream([1, 2])
        device.reconnected(liveAfter: 5)
        device.resuming(after: 2)
        // The ack of 4, a send made before the resume, overtakes the resume's messages.
        #expect(device.resumeBrings(4) && !device.resumeBrings(2))
        var counted = device
        for seq: Int64 in [3, 4, 5] {
            device.record(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run)
        }
        #expect(check([device]) == CheckReport())
        #expect(!device.resumeBrings(4), "the resume is done")
        // Counted as it came, the ack would be a delivery out of order.
        for seq: Int64 in [4, 3, 4, 5] {
            counted.record(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run)
        }
        #expect(check([counted]).reordered == 1)
    }

    @Test func aReconnectWithoutResumeLosesWhatWasMissed() {
        var device = stream([1, 2])
        device.reconnected(liveAfter: 5)
        for seq: Int64 in [6, 7] {
            device.record(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run)
        }
        let report = check([device], acked: 7)
        #expect(report.lost == 3)
        #expect(!report.passed)

        var refused = stream([1, 2])
        refused.reconnected(liveAfter: 5)
        refused.resuming(after: 2)
        refused.resumeRefused()
        for seq: Int64 in [6, 7] {
            refused.record(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run)
        }
        #expect(check([refused], acked: 7).lost == 3)
    }

    @Test func aResumeThatSkipsAMessageIsCaught() {
        var device = stream([1, 2])
        device.reconnected(liveAfter: 5)
        device.resuming(after: 2)
        for seq: Int64 in [3, 5, 6] {
            device.record(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run)
        }
        let report = check([device], acked: 6)
        #expect(report.lost == 1)
        #expect(report.gaps == 1)
        #expect(
            report.gapExamples == ["device 0, chat 7: after 3 came 5; last restart: a resume after 2 with 5 received"])
    }

    @Test func historyReadAfterAReconnectFillsWhatWasMissedButMustBeTheStoredMessages() {
        var device = stream([1, 2])
        device.reconnected(liveAfter: 5)
        for seq: Int64 in [6, 7] {
            device.record(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run)
        }
        for seq: Int64 in [3, 4, 5] {
            device.filled(seq: seq, messageID: 100 + seq, clientID: clientID(seq), run: Self.run)
        }
        #expect(check([device], acked: 7) == CheckReport())

        var partly = stream([1, 2])
        partly.reconnected(liveAfter: 5)
        partly.filled(seq: 3, messageID: 103, clientID: clientID(3), run: Self.run)
        partly.filled(seq: 4, messageID: 999, clientID: clientID(4), run: Self.run)
        let report = check([partly], acked: 5)
        #expect(report.lost == 1, "seq 5 was never read")
        #expect(report.unexpected == 1, "seq 4 was another message than the one acknowledged")
    }

    @Test func aDeviceThatJoinedLateIsCheckedFromWhereItJoined() {
        #expect(check([stream([4, 5], after: 3)]) == CheckReport())
        #expect(check([stream([5], after: 3)]).lost == 1)
    }
}
