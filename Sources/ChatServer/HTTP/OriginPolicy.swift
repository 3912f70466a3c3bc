import ChatProtocol
import Foundation
import HTTPTypes
import Hummingbird

/// Decides whether a browser request comes from a page the server trusts: its own origin or
/// one listed in `CHAT_ALLOWED_ORIGINS`. Applied where a cookie (which browsers attach to
/// cross-site requests too) is the credential.
public struct OriginPolicy: Sendable {
    private let allowedOrigins: Set<String>

    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!

    public init(allowedOrigins: [String]) {
        self.allowedOrigins = Set(allowedOrigins.map(Self.normalized))
    }

    /// Whether `origin` is the server's own (same host and port as the request's `Host`) or
    /// an allowed one.
    public func isAllowed(origin: String, host: String?) -> Bool {
        let origin = Self.normalized(origin)
        if allowedOrigins.contains(origin) { return true }
        guard let host, let url = URL(string: origin), let originHost = url.host else { return false }
        let originAuthority = url.port.map { "\(originHost):\($0)" } ?? originHost
        return originAuthority.lowercased() == host.lowercased()
    }

    /// Refuses a cookie-authenticated state-changing request that shows it comes from another
    /// site. Requests without `Origin` and `Sec-Fetch-Site` (non-browser clients) pass.
    /// - Throws: 403 `cross_site_request`.
    func checkSameSite(_ request: Request) throws {
        if request.headers[Self.secFetchSite]?.lowercased() == "cross-site" {
            throw Self.crossSite
        }
        if let origin = request.headers[.origin], !isAllowed(origin: origin, host: request.head.authority) {
            throw Self.crossSite
        }
    }

    static let crossSite = APIError(
        status: .forbidden, code: .crossSiteRequest,
        message: "Cookie-authenticated requests from other sites are refused; use an Authorization header.")

    private static func normalized(_ origin: String) -> String {
        origin.trimmingCharacters(in: .whitespaces).lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    }
}
