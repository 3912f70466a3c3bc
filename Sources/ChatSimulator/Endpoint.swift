import Foundation
import NIOCore

/// The server a run talks to, from its base URL (`http://host:port`).
public struct Endpoint: Sendable {
    /// The base URL of the REST API, without a trailing slash.
    public let baseURL: String
    let address: SocketAddress
    /// The `Host` header of WebSocket handshakes.
    let hostHeader: String
    let webSocketPath = "/ws"

    public init(url: String) throws {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host,
            !host.isEmpty, components.path.isEmpty || components.path == "/"
        else { throw SimulationError("--url must look like http://127.0.0.1:8000 (got \(url))") }
        let port = components.port ?? 80
        do {
            address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            throw SimulationError("cannot resolve \(host): \(error)")
        }
        baseURL = "http://\(host):\(port)"
        hostHeader = "\(host):\(port)"
    }

    /// The servers of a comma-separated list of base URLs (several nodes of one deployment).
    public static func list(_ urls: String) throws -> [Endpoint] {
        let endpoints = try urls.split(separator: ",").map {
            try Endpoint(url: $0.trimmingCharacters(in: .whitespaces))
        }
        guard !endpoints.isEmpty else { throw SimulationError("--url needs at least one server") }
        return endpoints
    }

    /// Whether the server is on this machine's IPv4 loopback network, where the simulator can
    /// connect from several source addresses (127.0.0.1, 127.0.0.2, ...).
    var isIPv4Loopback: Bool {
        if case .v4(let address) = address { return UInt32(bigEndian: address.address.sin_addr.s_addr) >> 24 == 127 }
        return false
    }
}
