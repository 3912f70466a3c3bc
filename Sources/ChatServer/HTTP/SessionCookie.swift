import ChatProtocol
import Hummingbird

/// The HttpOnly cookie that carries the session token for browsers.
enum SessionCookie {
    static let name = "access_token"

    /// The cookie set at log-in: HttpOnly, `SameSite=Lax`, scoped to the whole site, living as
    /// long as the token.
    static func set(_ token: SessionToken, lifetimeSeconds: Int, secure: Bool) -> Cookie {
        Cookie(
            name: name, value: token.token, maxAge: lifetimeSeconds, path: "/", secure: secure, httpOnly: true,
            sameSite: .lax)
    }

    /// The answer that starts a session (log-in, password change): the token as JSON and in
    /// the cookie, never cached.
    static func sessionResponse(_ token: SessionToken, lifetime: Duration, secure: Bool) throws -> Response {
        let seconds = Int(lifetime.components.seconds)
        var response = try JSONResponse.make(TokenPayload(accessToken: token.token, expiresIn: seconds))
        response.setCookie(set(token, lifetimeSeconds: seconds, secure: secure))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// A cookie that makes the browser drop the session cookie.
    static func cleared(secure: Bool) -> Cookie {
        Cookie(name: name, value: "", maxAge: 0, path: "/", secure: secure, httpOnly: true, sameSite: .lax)
    }
}
