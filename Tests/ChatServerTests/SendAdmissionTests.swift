import Testing

@testable import ChatServer

/// Admission control decides from what is queued and how long batches took: no store, no
/// network, no clock.
@Suite("Send admission")
struct SendAdmissionTests {
    static let limits = SendAdmission.Limits(maxWait: .milliseconds(500), maxQueued: 100)

    /// An admission whose batches took `batchTime` and which has `storing` batches in flight.
    static func admission(batchTime: Duration, storing: Int) -> SendAdmission {
        var admission = SendAdmission(limits: limits, maxBatch: 128)
        admission.batchStarted()
        admission.batchAnswered(count: 0, after: batchTime)
        for _ in 0..<storing { admission.batchStarted() }
        return admission
    }

    @Test func aSendIsAdmittedWhenNothingIsBeingStoredHoweverSlowBatchesWere() throws {
        var admission = Self.admission(batchTime: .seconds(5), storing: 0)
        try admission.admit(waiting: 0, storingFor: nil)
        #expect(admission.unanswered == 1)
    }

    @Test func anIdleChatWaitsABatchTimeWhileOthersAreStored() throws {
        var quick = Self.admission(batchTime: .milliseconds(100), storing: 3)
        #expect(quick.expectedWait(waiting: 0, storingFor: nil) == .milliseconds(100))
        try quick.admit(waiting: 0, storingFor: nil)
        // The one writer (or the pool) is the bottleneck: every batch takes 1.5 s, idle chat or not.
        var slow = Self.admission(batchTime: .milliseconds(1500), storing: 3)
        #expect(throws: ChatError.overloaded(retryAfterMilliseconds: 1500)) {
            try slow.admit(waiting: 0, storingFor: nil)
        }
        // A hung batch says nothing of when it ends: retry within 2 s.
        var hung = Self.admission(batchTime: .milliseconds(10), storing: 1)
        #expect(throws: ChatError.overloaded(retryAfterMilliseconds: 2000)) {
            try hung.admit(waiting: 0, storingFor: .seconds(14))
        }
    }

    @Test func aSendThatWouldWaitTooLongBehindItsChatsBatchesIsRefusedWithTheWait() throws {
        var admission = Self.admission(batchTime: .milliseconds(200), storing: 1)
        // Behind a batch storing for 50 ms: 150 ms left of it, then 200 ms for its own batch.
        #expect(admission.expectedWait(waiting: 10, storingFor: .milliseconds(50)) == .milliseconds(350))
        try admission.admit(waiting: 10, storingFor: .milliseconds(50))
        // 300 sends waiting fill three batches: 150 + 3 × 200 ms.
        #expect(admission.expectedWait(waiting: 299, storingFor: .milliseconds(50)) == .milliseconds(750))
        #expect(throws: ChatError.overloaded(retryAfterMilliseconds: 750)) {
            try admission.admit(waiting: 299, storingFor: .milliseconds(50))
        }
        #expect(admission.unanswered == 1, "a refused send holds no place")
    }

    @Test func aBatchStoringLongerThanUsualCountsAsTheNewPace() throws {
        var admission = Self.admission(batchTime: .milliseconds(10), storing: 1)
        // The database stalled: a batch has been storing for 400 ms although they took 10 ms.
        #expect(admission.expectedWait(waiting: 0, storingFor: .milliseconds(400)) == .milliseconds(400))
        #expect(throws: ChatError.overloaded(retryAfterMilliseconds: 600)) {
            try admission.admit(waiting: 0, storingFor: .milliseconds(600))
        }
    }

    @Test func theNodeHoldsAtMostItsCountOfUnansweredSends() throws {
        var admission = SendAdmission(limits: .init(maxWait: .seconds(60), maxQueued: 3), maxBatch: 128)
        for _ in 0..<3 { try admission.admit(waiting: 0, storingFor: nil) }
        #expect(throws: ChatError.self) { try admission.admit(waiting: 0, storingFor: nil) }
        admission.batchStarted()
        admission.batchAnswered(count: 2, after: .milliseconds(5))
        try admission.admit(waiting: 0, storingFor: nil)
        #expect(admission.unanswered == 2)
    }

    @Test func batchTimesAreAMovingAverage() {
        var admission = SendAdmission(limits: Self.limits, maxBatch: 128)
        admission.batchStarted()
        admission.batchAnswered(count: 0, after: .milliseconds(100))
        #expect(admission.batchTime == .milliseconds(100))
        admission.batchStarted()
        admission.batchAnswered(count: 0, after: .milliseconds(200))
        #expect(admission.batchTime == .milliseconds(120))
        #expect(admission.batchesStoring == 0)
    }
}
