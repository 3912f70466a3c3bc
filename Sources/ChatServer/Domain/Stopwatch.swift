/// The time read from an injected clock, as the duration since the stopwatch was made. Code
/// that measures intervals (a send rate, the typing throttle) reads it instead of
/// `ContinuousClock.now`, so a test's clock moves it without sleeping.
public struct Stopwatch: Sendable {
    private let read: @Sendable () -> Duration

    public init<C: Clock>(_ clock: C) where C.Duration == Duration {
        let start = clock.now
        read = { start.duration(to: clock.now) }
    }

    /// Time since the stopwatch was made, on its clock.
    public var elapsed: Duration { read() }
}
