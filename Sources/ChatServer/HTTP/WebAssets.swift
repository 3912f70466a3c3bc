import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The web client's files (`web/` in the package), embedded in the binary at build time and
/// decoded once. Each file carries its content type and a strong `ETag` of its bytes.
struct WebAssets: Sendable {
    /// One embedded file, ready to serve.
    struct File: Sendable {
        let body: ByteBuffer
        let contentType: String
        let etag: String
    }

    private let files: [String: File]

    /// The files under `web/`, keyed by their path below it (`chat.html`, `static/chat.js`).
    init(embedded: [String: String] = EmbeddedResources.base64Files) {
        var files: [String: File] = [:]
        for (path, base64) in embedded where path.hasPrefix("web/") {
            guard let data = Data(base64Encoded: base64) else { continue }
            let digest = SHA256.hash(data: data).prefix(12).map { String(format: "%02x", $0) }.joined()
            files[String(path.dropFirst("web/".count))] = File(
                body: ByteBuffer(bytes: data), contentType: Self.contentType(of: path), etag: "\"\(digest)\"")
        }
        self.files = files
    }

    subscript(path: String) -> File? { files[path] }

    private static func contentType(of path: String) -> String {
        switch path.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "svg": "image/svg+xml"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }
}
