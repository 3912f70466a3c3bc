import ChatProtocol
import Hummingbird

/// `POST /user`, `GET /users/me`, `GET /users?q=`, `POST /user/password`.
struct UserController {
    let accounts: AccountService
    let maxBodyBytes: Int
    let cookieSecure: Bool

    func addPublicRoutes(to router: Router<ChatRequestContext>) {
        router.post("/user", use: create)
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("/users/me", use: me)
        group.get("/users", use: search)
        group.post("/user/password", use: changePassword)
    }

    /// Registers a user; 201 with the account.
    @Sendable func create(request: Request, context: ChatRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(as: CreateUserRequest.self, maxBytes: maxBodyBytes)
        let user = try await accounts.register(name: body.name, email: body.email, password: body.password)
        return try JSONResponse.make(AccountPayload(user), status: .created)
    }

    /// Changes the caller's password. Every session of theirs ends (their sockets close with
    /// 1008); the answer carries a new token (and cookie) for this client.
    @Sendable func changePassword(request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeJSON(as: ChangePasswordRequest.self, maxBytes: maxBodyBytes)
        let token = try await accounts.changePassword(
            of: context.session, current: body.currentPassword, new: body.newPassword)
        return try SessionCookie.sessionResponse(token, lifetime: accounts.tokens.lifetime, secure: cookieSecure)
    }

    /// The caller's own account.
    @Sendable func me(request: Request, context: AuthenticatedContext) async throws -> Response {
        try JSONResponse.make(AccountPayload(context.user))
    }

    /// Users whose name starts with `q` (case-insensitive), at most `limit` (default 20).
    @Sendable func search(request: Request, context: AuthenticatedContext) async throws -> Response {
        let query = request.uri.queryParameters.get("q") ?? ""
        let limit = try request.queryInteger("limit") ?? 20
        let users = try await accounts.searchUsers(query: query, limit: Int(clamping: limit))
        return try JSONResponse.make(users.map(UserPayload.init))
    }
}
