import ChatProtocol
import Hummingbird

/// `GET /chat/sync/persistent`, kept from the original API for administrators.
struct AdminController {
    let store: any ChatStore

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("/chat/sync/persistent", use: sync)
    }

    /// The original rebuilt its in-memory state from the database here. This server keeps no
    /// state that can drift from the database, so it reports what the database holds.
    @Sendable func sync(request: Request, context: AuthenticatedContext) async throws -> Response {
        guard context.user.isAdmin else { throw ChatError.adminOnly }
        return try JSONResponse.make(SyncReportPayload(try await store.counts()))
    }
}
