import Foundation
import Hummingbird
import NIOCore

/// Serves the REST API's OpenAPI document (`openapi/openapi.json`) and the WebSocket
/// protocol's AsyncAPI document (`asyncapi/asyncapi.json`), both embedded at build time, and a
/// reference page at `/docs` (`web/docs.html`), which renders the OpenAPI document itself with
/// `web/static/docs.js`: it loads nothing from any other host.
struct APIDocsController {
    let assets: WebAssets

    func addPublicRoutes(to router: Router<ChatRequestContext>) {
        for (path, document) in [("/openapi.json", APIDocuments.openAPI), ("/asyncapi.json", APIDocuments.asyncAPI)] {
            let body = ByteBuffer(bytes: document)
            router.get(RouterPath(path)) { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                    body: .init(byteBuffer: body))
            }
        }
        router.get("/docs") { _, _ in
            guard let page = assets["docs.html"] else { throw APIError.unexpected }
            return Response(
                status: .ok,
                headers: [
                    .contentType: page.contentType, .cacheControl: "no-cache",
                    .contentSecurityPolicy: ContentSecurityPolicy.webClient,
                ],
                body: .init(byteBuffer: page.body))
        }
    }
}

/// The API documents as shipped in the binary, for anything that checks a server against them.
public enum APIDocuments {
    /// The REST API (OpenAPI 3.1).
    public static var openAPI: Data { file("openapi/openapi.json") }
    /// The WebSocket protocol (AsyncAPI 3.0): read it with `ProtocolDocument`.
    public static var asyncAPI: Data { file("asyncapi/asyncapi.json") }

    private static func file(_ path: String) -> Data {
        EmbeddedResources.base64Files[path].flatMap { Data(base64Encoded: $0) } ?? Data()
    }
}
