import ChatProtocol
import Hummingbird

/// Full-text search of messages: `GET /search`.
struct SearchController {
    let search: MessageSearch

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("/search", use: find)
    }

    /// Full-text search of the caller's chats (or of `chat_id`): `q`, `limit` 1...100 (default
    /// 20), `before` (the previous page's `next`). Newest first.
    @Sendable func find(request: Request, context: AuthenticatedContext) async throws -> Response {
        let (hits, next) = try await search.search(
            request.uri.queryParameters.get("q") ?? "", for: context.user.id,
            in: try request.queryInteger("chat_id").map(ChatID.init),
            before: try request.queryInteger("before").map(MessageID.init),
            limit: Int(clamping: try request.queryInteger("limit") ?? Int64(MessageSearch.defaultLimit)))
        let payloads = hits.map {
            SearchHitPayload(message: MessagePayload($0.hit.message, isRead: $0.isRead), snippet: $0.hit.markedSnippet)
        }
        return JSONResponse.make(writing: SearchResultsPayload(messages: payloads, next: next))
    }
}
