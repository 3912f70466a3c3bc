import Foundation

/// Where the data lives, parsed from `DATABASE_URL`.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    /// An embedded SQLite database file (`sqlite:PATH`); single node only.
    case sqlite(path: String)
    /// A PostgreSQL server (`postgres://user:password@host:port/database?sslmode=...`).
    case postgres(PostgresLocation)

    /// Parses `sqlite:PATH` or `postgres://` / `postgresql://` URLs; `variable` names the
    /// setting in errors.
    public init(url: String, variable: String = "DATABASE_URL") throws {
        if url.hasPrefix("sqlite:") {
            var path = String(url.dropFirst("sqlite:".count))
            // Accept the URL-looking forms sqlite:///abs/path and sqlite://rel/path too.
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw ConfigError.invalid(variable, url, "sqlite: needs a file path") }
            self = .sqlite(path: path)
            return
        }
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme),
            let host = components.host, !host.isEmpty
        else {
            throw ConfigError.invalid(
                variable, Self.redacted(url),
                "expected sqlite:PATH or postgres://user:password@host:port/database")
        }
        let database = String(components.path.drop { $0 == "/" })
        let sslMode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        guard let tls = PostgresLocation.TLSMode(rawValue: sslMode) else {
            throw ConfigError.invalid(
                variable, Self.redacted(url), "sslmode must be disable, prefer, require or verify-full")
        }
        self = .postgres(
            PostgresLocation(
                host: host,
                port: components.port ?? 5432,
                username: components.user?.removingPercentEncoding ?? "postgres",
                password: components.password?.removingPercentEncoding,
                database: database.isEmpty ? nil : database,
                tls: tls))
    }

    /// The location without its password, for logs and messages.
    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let location):
            "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database ?? "")"
        }
    }

    private static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "(unparseable URL)"
    }
}

/// Connection settings for a PostgreSQL server.
public struct PostgresLocation: Sendable, Equatable {
    /// Like libpq's `sslmode`.
    public enum TLSMode: String, Sendable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it (certificate not verified), plain otherwise.
        case prefer
        /// TLS always, certificate not verified.
        case require
        /// TLS always, with the certificate and host name verified.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String?
    public var tls: TLSMode

    public init(host: String, port: Int, username: String, password: String?, database: String?, tls: TLSMode) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }
}
