import ChatProtocol
import Foundation
import HTTPTypes
import Hummingbird

/// `POST /auth/login` (OAuth2 password grant) and `POST /auth/logout`.
struct AuthController {
    let accounts: AccountService
    let maxBodyBytes: Int
    let cookieSecure: Bool
    let trustedProxies: Set<String>

    /// The form of the OAuth2 password grant (RFC 6749 §4.3); `username` is a name or email.
    /// The OAuth2 password grant's fields; others (`scope`, `client_id`, ...) are ignored.
    struct LoginForm {
        var grantType: String?
        var username: String
        var password: String

        init(_ fields: [String: String]) throws {
            guard let username = fields["username"] else { throw ChatError.invalidField("username", "is required") }
            guard let password = fields["password"] else { throw ChatError.invalidField("password", "is required") }
            self.grantType = fields["grant_type"]
            self.username = username
            self.password = password
        }
    }

    func addPublicRoutes(to router: Router<ChatRequestContext>) {
        router.post("/auth/login", use: logIn)
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.post("/auth/logout", use: logOut)
    }

    /// Checks the credentials; returns the token and sets it as an HttpOnly cookie.
    @Sendable func logIn(request: Request, context: ChatRequestContext) async throws -> Response {
        let form = try LoginForm(await request.formFields(maxBytes: maxBodyBytes))
        if let grantType = form.grantType, grantType != "password" {
            throw APIError(
                status: .badRequest, code: .unsupportedGrantType, message: "grant_type must be \"password\".")
        }
        let (_, token) = try await accounts.logIn(
            login: form.username, password: form.password, address: clientAddress(request, context: context))
        return try SessionCookie.sessionResponse(token, lifetime: accounts.tokens.lifetime, secure: cookieSecure)
    }

    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!

    /// The client's IP address: the connection's peer, or, when that peer is a trusted proxy,
    /// the address the proxy appended last to `X-Forwarded-For` (earlier entries are the
    /// client's own claims).
    func clientAddress(_ request: Request, context: ChatRequestContext) -> String? {
        guard let peer = context.remoteAddress?.ipAddress else { return nil }
        guard trustedProxies.contains(peer), let forwarded = request.headers[Self.xForwardedFor] else { return peer }
        let last = forwarded.split(separator: ",").last?.trimmingCharacters(in: .whitespaces) ?? ""
        return last.isEmpty ? peer : last
    }

    /// Revokes the token used for this request and clears the cookie; 204.
    @Sendable func logOut(request: Request, context: AuthenticatedContext) async throws -> Response {
        try await accounts.logOut(context.session)
        var response = Response(status: .noContent)
        response.setCookie(SessionCookie.cleared(secure: cookieSecure))
        return response
    }
}
