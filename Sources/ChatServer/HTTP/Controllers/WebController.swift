import ChatProtocol
import Foundation
import HTTPTypes
import Hummingbird

/// The browser client: `GET /` (log-in, or the user's chats), `GET /chat/{chat_id}` (one chat,
/// members only) and `GET /static/{file}`. Pages are static files from `web/`: everything
/// user-specific comes from the API, so no user data is ever rendered into HTML.
struct WebController {
    let accounts: AccountService
    let chats: ChatService
    let assets: WebAssets
    let pages: ErrorPages

    func addPublicRoutes(to router: Router<ChatRequestContext>) {
        router.get("/", use: home)
        router.get("/chat/{chat_id}", use: chat)
        router.get("/static/{file}", use: staticFile)
    }

    /// The chat list when the request carries a valid session, else the log-in page.
    @Sendable func home(request: Request, context: ChatRequestContext) async throws -> Response {
        try page(try await session(of: request) == nil ? "login.html" : "home.html")
    }

    /// The chat page for its members; others get the "Chat not found" error page (the same whether
    /// the chat exists or not), logged-out visitors go to `/`.
    @Sendable func chat(request: Request, context: ChatRequestContext) async throws -> Response {
        guard let session = try await session(of: request) else {
            return Response(status: .seeOther, headers: [.location: "/", .cacheControl: "no-store"])
        }
        guard let id = context.parameters.get("chat_id").flatMap(ChatID.init) else {
            return pages.response(for: APIError(ChatError.chatNotFound))
        }
        do {
            _ = try await chats.details(of: id, viewer: session.user.id)
        } catch ChatError.chatNotFound {
            return pages.response(for: APIError(ChatError.chatNotFound))
        }
        return try page("chat.html")
    }

    /// Scripts, styles and icons, revalidated by `ETag` (a 304 when unchanged).
    @Sendable func staticFile(request: Request, context: ChatRequestContext) async throws -> Response {
        guard let name = context.parameters.get("file"), let file = assets["static/\(name)"] else {
            throw APIError(status: .notFound, code: .notFound, message: "No such file.")
        }
        var headers: HTTPFields = [.eTag: file.etag, .cacheControl: "no-cache"]
        if let known = request.headers[.ifNoneMatch],
            known.split(separator: ",").contains(where: { Self.sameTag($0, file.etag) })
        {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = file.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: file.body))
    }

    /// The weak comparison `If-None-Match` asks for (RFC 9110 §13.1.2): `W/` is ignored.
    private static func sameTag(_ candidate: Substring, _ etag: String) -> Bool {
        let tag = candidate.trimmingCharacters(in: .whitespaces)
        return tag == "*" || tag == etag || tag == "W/\(etag)"
    }

    private func page(_ name: String, status: HTTPResponse.Status = .ok) throws -> Response {
        guard let file = assets[name] else { throw APIError.unexpected }
        return Response(
            status: status,
            headers: [
                .contentType: file.contentType, .cacheControl: "no-store",
                .contentSecurityPolicy: ContentSecurityPolicy.webClient,
            ],
            body: .init(byteBuffer: file.body))
    }

    /// The caller's session, or nil when the request carries no token or one that no longer
    /// works (a page then offers to log in instead of answering 401).
    private func session(of request: Request) async throws -> Session? {
        guard let (token, _) = AuthMiddleware.credentials(in: request) else { return nil }
        do {
            return try await accounts.authenticate(token: token)
        } catch ChatError.notAuthenticated {
            return nil
        }
    }
}
