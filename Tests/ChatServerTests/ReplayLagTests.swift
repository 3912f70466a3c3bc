import Testing

@testable import ChatServer

/// A replica's lag in time, from the primary's WAL positions sampled as time passes.
@Suite("Replay lag")
struct ReplayLagTests {
    let start = ContinuousClock.now

    @Test func aReplicaWithEverythingSampledHasNoLag() {
        var lag = ReplayLag()
        lag.primaryWasAt(100, at: start, keeping: .seconds(2))
        lag.primaryWasAt(100, at: start + .seconds(1), keeping: .seconds(2))
        #expect(lag.lag(ofReplayed: 100, now: start + .seconds(1)) == .zero)
        #expect(lag.lag(ofReplayed: 150, now: start + .seconds(1)) == .zero, "a replica may read past a sample")
    }

    @Test func theLagRunsFromTheFirstPositionNotReplayed() {
        var lag = ReplayLag()
        lag.primaryWasAt(100, at: start, keeping: .seconds(2))
        lag.primaryWasAt(200, at: start + .milliseconds(250), keeping: .seconds(2))
        lag.primaryWasAt(300, at: start + .milliseconds(500), keeping: .seconds(2))
        let now = start + .milliseconds(600)
        #expect(lag.lag(ofReplayed: 250, now: now) == .milliseconds(100))
        #expect(lag.lag(ofReplayed: 150, now: now) == .milliseconds(350))
        #expect(lag.lag(ofReplayed: 50, now: now) == .milliseconds(600))
    }

    /// Samples older than the window go, the newest stays: a replica behind all that are kept
    /// counts as at least the window behind.
    @Test func oldSamplesAreForgotten() {
        var lag = ReplayLag()
        lag.primaryWasAt(100, at: start, keeping: .seconds(1))
        lag.primaryWasAt(200, at: start + .seconds(5), keeping: .seconds(1))
        #expect(lag.lag(ofReplayed: 0, now: start + .seconds(5)) == .zero, "the sample at 0 s is gone")
        lag.primaryWasAt(200, at: start + .seconds(9), keeping: .seconds(1))
        #expect(lag.lag(ofReplayed: 0, now: start + .seconds(9)) == .seconds(4), "only the newest sample is left")
    }
}
