import ChatServer

/// How long the test helpers wait for something the server must do (a frame, an answer, a
/// close) before they call it a hang.
///
/// It bounds hangs; it checks no timing. On a machine several times slower than a developer's,
/// or busy with the rest of the suite running in parallel, what takes milliseconds may take
/// seconds, and a correct server must not fail a test for that. A test that proves something
/// did *not* happen waits for a later event that shows the server moved on, never for a quiet
/// period.
public enum Patience {
    /// The wait for any one thing the server must do.
    public static let wait: Duration = .seconds(60)

    /// The test servers' waits on PostgreSQL: with the whole suite on one throwaway cluster, a
    /// connection or a query may take longer than a production node's fail-fast limits allow.
    public static let postgres = PostgresChatStore.WaitLimits(connection: wait, work: wait)
}
