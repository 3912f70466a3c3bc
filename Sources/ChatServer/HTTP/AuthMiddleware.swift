import Foundation
import HTTPTypes
import Hummingbird

/// Finds the caller's token (an `Authorization: Bearer` header, else the session cookie),
/// checks it, and records the session in the context. Routes behind it take an
/// ``AuthenticatedContext``, which refuses requests without a session with 401.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ChatRequestContext

    let accounts: AccountService
    let originPolicy: OriginPolicy

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        guard let (token, source) = Self.credentials(in: request) else { return try await next(request, context) }
        if source == .cookie, !Self.safeMethods.contains(request.method) {
            try originPolicy.checkSameSite(request)
        }
        // The session check is the request's first read: the scope lets the reads after it
        // know how far a replica must have replayed for them.
        return try await ReadScope.$current.withValue(ReadScope()) {
            var context = context
            context.session = try await accounts.authenticate(token: token)
            context.credentialSource = source
            return try await next(request, context)
        }
    }

    private static let safeMethods: Set<HTTPRequest.Method> = [.get, .head, .options]

    /// The token and where it came from. A present but non-Bearer `Authorization` header
    /// counts as no credentials (and so as 401), never as a fallback to the cookie.
    static func credentials(in request: Request) -> (String, CredentialSource)? {
        if let authorization = request.headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
            let token = parts[1].trimmingCharacters(in: .whitespaces)
            return token.isEmpty ? nil : (token, .bearerHeader)
        }
        if let cookie = request.cookies[SessionCookie.name], !cookie.value.isEmpty {
            return (cookie.value, .cookie)
        }
        return nil
    }
}
