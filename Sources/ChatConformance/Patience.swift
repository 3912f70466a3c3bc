/// How long a check waits for something the server must do (a frame, an answer, a close)
/// before it calls it a hang.
///
/// It bounds hangs; it checks no timing. On a machine several times slower than a developer's,
/// or busy with the rest of the suite running in parallel, what takes milliseconds may take
/// seconds, and a correct server must not fail a check for that. A check that proves something
/// did *not* happen waits for a later event that shows the server moved on, never for a quiet
/// period.
public enum Patience {
    /// The wait for any one thing the server must do.
    public static let wait: Duration = .seconds(60)
    /// The longest one conformance check may run, several waits included, before it fails as
    /// hung and the run goes on with the next.
    public static let check: Duration = .seconds(240)
}
