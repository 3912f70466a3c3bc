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

    /// A cookie that makes the browser drop the session cookie.
    static func cleared(secure: Bool) -> Cookie {
        Cookie(name: name, value: "", maxAge: 0, path: "/", secure: secure, httpOnly: true, sameSite: .lax)
    }
}
