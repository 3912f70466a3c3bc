import ChatConformance
import ChatServer

extension Patience {
    /// The test servers' waits on PostgreSQL: with the whole suite on one throwaway cluster, a
    /// connection or a query may take longer than a production node's fail-fast limits allow.
    public static let postgres = PostgresChatStore.WaitLimits(connection: wait, work: wait)
}
