import ChatProtocol
import Hummingbird

/// Edits and deletions of messages: `PATCH /messages/{message_id}`, `DELETE /messages/{message_id}`.
struct MessageController {
    let editing: MessageEditing
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.patch("/messages/{message_id}", use: edit)
        group.delete("/messages/{message_id}", use: delete)
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
