import ChatProtocol
import Hummingbird

/// `GET /chat/sync/persistent`, kept from the original API for administrators.
struct AdminController {
    let store: any ChatStore
    let hub: ChatHub
    let cluster: ClusterLink?

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("/chat/sync/persistent", use: sync)
    }

    /// Rebuilds which chats every open connection follows from the database (without
    /// disconnecting anyone), on this node and the others, and reports what the database
    /// holds and what this node serves.
    @Sendable func sync(request: Request, context: AuthenticatedContext) async throws -> Response {
        guard context.user.isAdmin else { throw ChatError.adminOnly }
        let live = try await hub.resync()
        cluster?.requestResync()
        let counts = try await store.counts()
        return try JSONResponse.make(
            SyncReportPayload(
                users: counts.users, chats: counts.chats, members: counts.members, messages: counts.messages,
                liveUsers: Int64(live.users), liveConnections: Int64(live.connections)))
    }
}
