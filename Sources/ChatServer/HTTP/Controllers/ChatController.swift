import ChatProtocol
import Hummingbird

/// Chats, membership and history: `POST /chat`, `POST /chats/private/{user_id}`,
/// `POST /chat/add_user/...`, `POST /chat/remove_user/...`, `POST /chat/leave/{chat_id}`, `GET /chats`,
/// `GET /chats/{chat_id}`,
/// `GET /history/{chat_id}`, `GET /chats/{chat_id}/membership-events`.
struct ChatController {
    let chats: ChatService
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.post("/chat", use: create)
        group.post("/chats/private/{user_id}", use: openPrivate)
        group.post("/chat/add_user/{user_id}/{chat_id}", use: addUser)
        group.post("/chat/remove_user/{user_id}/{chat_id}", use: removeUser)
        group.post("/chat/leave/{chat_id}", use: leave)
        group.get("/chats", use: list)
        group.get("/chats/{chat_id}", use: details)
        group.get("/history/{chat_id}", use: history)
        group.get("/chats/{chat_id}/membership-events", use: membershipEvents)
    }

    /// Creates a chat with the caller as creator and first member; 201.
    @Sendable func create(request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeJSON(as: CreateChatRequest.self, maxBytes: maxBodyBytes)
        let details = try await chats.createChat(name: body.name, type: body.chatType, creator: context.user.id)
        return try JSONResponse.make(ChatPayload(details), status: .created)
    }

    /// The caller's private chat with a user: 200 with the one they have, or 201 with a new one.
    @Sendable func openPrivate(request: Request, context: AuthenticatedContext) async throws -> Response {
        let (details, created) = try await chats.openPrivateChat(
            with: UserID(parameter: "user_id", in: context), for: context.user)
        return try JSONResponse.make(ChatPayload(details), status: created ? .created : .ok)
    }

    /// Adds a member (creator only); the chat with its members.
    @Sendable func addUser(request: Request, context: AuthenticatedContext) async throws -> Response {
        let details = try await chats.addMember(
            UserID(parameter: "user_id", in: context), to: ChatID(parameter: "chat_id", in: context),
            by: context.user.id)
        return try JSONResponse.make(ChatPayload(details))
    }

    /// Removes a member (creator only); the chat with its remaining members.
    @Sendable func removeUser(request: Request, context: AuthenticatedContext) async throws -> Response {
        let details = try await chats.removeMember(
            UserID(parameter: "user_id", in: context), from: ChatID(parameter: "chat_id", in: context),
            by: context.user.id)
        return try JSONResponse.make(ChatPayload(details))
    }

    /// The caller leaves a chat (any member may); the chat as it is afterwards, with its
    /// remaining members and, when the caller created it, its new creator.
    @Sendable func leave(request: Request, context: AuthenticatedContext) async throws -> Response {
        let details = try await chats.leave(ChatID(parameter: "chat_id", in: context), user: context.user.id)
        return try JSONResponse.make(ChatPayload(details))
    }

    /// The caller's chats with last message and unread count, newest activity first.
    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> Response {
        try JSONResponse.make(try await chats.chats(for: context.user.id).map(ChatSummaryPayload.init))
    }

    /// One chat of the caller's, with its members and their read markers.
    @Sendable func details(request: Request, context: AuthenticatedContext) async throws -> Response {
        let details = try await chats.details(of: ChatID(parameter: "chat_id", in: context), viewer: context.user.id)
        return try JSONResponse.make(ChatPayload(details))
    }

    /// Messages in `seq` order. Pages by `offset` (the original API) or by one of the cursors
    /// `before_seq` / `after_seq`; `limit` 1...1000, default 100.
    @Sendable func history(request: Request, context: AuthenticatedContext) async throws -> Response {
        let chatID = try ChatID(parameter: "chat_id", in: context)
        let limit = Int(clamping: try request.queryInteger("limit") ?? 100)
        let offset = try request.queryInteger("offset")
        let beforeSeq = try request.queryInteger("before_seq")
        let afterSeq = try request.queryInteger("after_seq")
        let query: HistoryQuery
        switch (offset, beforeSeq, afterSeq) {
        case (let offset, nil, nil): query = .offset(offset ?? 0, limit: limit)
        case (nil, let before?, nil): query = .before(seq: before, limit: limit)
        case (nil, nil, let after?): query = .after(seq: after, limit: limit)
        default: throw ChatError.invalidField("offset", "use only one of offset, before_seq and after_seq")
        }
        let items = try await chats.history(of: chatID, viewer: context.user.id, query: query)
        return JSONResponse.make(writing: items.map { MessagePayload($0.message, isRead: $0.isRead) })
    }

    /// Who added or removed whom after messages `from_seq` through `to_seq` (default: all),
    /// in the order it happened; `limit` 1...500, default 100.
    @Sendable func membershipEvents(request: Request, context: AuthenticatedContext) async throws -> Response {
        let events = try await chats.membershipEvents(
            in: ChatID(parameter: "chat_id", in: context), viewer: context.user.id,
            fromSeq: try request.queryInteger("from_seq") ?? 0, toSeq: try request.queryInteger("to_seq") ?? Int64.max,
            limit: Int(clamping: try request.queryInteger("limit") ?? 100))
        return try JSONResponse.make(events.map(MembershipEventPayload.init))
    }
}
