import Foundation
import Hummingbird
import NIOCore

/// Serves the OpenAPI document (`openapi/openapi.json`, embedded at build time) and a
/// reference page for it at `/docs` (`web/docs.html`), which renders the document itself with
/// `web/static/docs.js`: it loads nothing from any other host.
struct APIDocsController {
    let assets: WebAssets

    /// The OpenAPI document as shipped in the binary.
    static var document: Data {
        EmbeddedResources.base64Files["openapi/openapi.json"].flatMap { Data(base64Encoded: $0) } ?? Data()
    }

    func addPublicRoutes(to router: Router<ChatRequestContext>) {
        let document = ByteBuffer(bytes: Self.document)
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: document))
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
