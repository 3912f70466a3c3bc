/// A token bucket: `rate` tokens a second, holding at most `burst`. Time is passed in (as
/// the elapsed time of a ``Stopwatch``), so tests need no clock.
struct TokenBucket {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var last: Duration

    init(rate: Int, burst: Int, now: Duration) {
        self.rate = Double(rate)
        self.burst = Double(max(burst, 1))
        self.tokens = self.burst
        self.last = now
    }

    /// Takes a token if one is available at `now`.
    /// - Returns: nil when it took one; otherwise how long until the next one is there, rounded
    ///   up to the millisecond (a retry after that finds it).
    mutating func take(at now: Duration) -> Duration? {
        let elapsed = now - last
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(burst, tokens + max(0, seconds) * rate)
        last = max(last, now)
        guard tokens >= 1 else { return .milliseconds(Int(((1 - tokens) / rate * 1000).rounded(.up))) }
        tokens -= 1
        return nil
    }
}
