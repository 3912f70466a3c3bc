import ChatProtocol
import Hummingbird

/// `POST /user`, `GET /users/me`, `GET /users?q=`.
struct UserController {
    let accounts: AccountService
    let maxBodyBytes: Int

    func addPublicRoutes(to router: Router<ChatRequestContext>) {
        router.post("/user", use: create)
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("/users/me", use: me)
        group.get("/users", use: search)
    }

    /// Registers a user; 201 with the account.
    @Sendable func create(request: Request, context: ChatRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(as: CreateUserRequest.self, maxBytes: maxBodyBytes)
        let user = try await accounts.register(name: body.name, email: body.email, password: body.password)
        return try JSONResponse.make(AccountPayload(user), status: .created)
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
