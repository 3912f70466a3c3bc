import ChatProtocol
import Hummingbird

/// Edits, deletions and search of messages: `PATCH /messages/{message_id}`,
/// `DELETE /messages/{message_id}`, `GET /search`.
struct MessageController {
    let editing: MessageEditing
    let search: MessageSearch
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.patch("/messages/{message_id}", use: edit)
        group.delete("/messages/{message_id}", use: delete)
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
        return try JSONResponse.make(SearchResultsPayload(messages: payloads, next: next))
    }

    /// The sender replaces the text; the message as it is now, with `edited_at`.
    @Sendable func edit(request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeJSON(as: EditMessageRequest.self, maxBytes: maxBodyBytes)
        let item = try await editing.edit(
            MessageID(parameter: "message_id", in: context), text: body.text, by: context.user.id)
        return try JSONResponse.make(MessagePayload(item.message, isRead: item.isRead))
    }

    /// The sender, or the creator of a GROUP chat, deletes the message; its tombstone.
    @Sendable func delete(request: Request, context: AuthenticatedContext) async throws -> Response {
        let item = try await editing.delete(MessageID(parameter: "message_id", in: context), by: context.user.id)
        return try JSONResponse.make(MessagePayload(item.message, isRead: item.isRead))
    }
}
