import Foundation
import Hummingbird
import NIOCore

/// Serves the OpenAPI document (`openapi/openapi.json`, embedded at build time) and an
/// interactive page for it at `/docs`.
struct APIDocsController {
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
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: ContentSecurityPolicy.apiDocs,
                ],
                body: .init(byteBuffer: ByteBuffer(string: Self.page)))
        }
    }

    /// Swagger UI from a CDN, as FastAPI's `/docs` does; the document itself is served locally,
    /// and `web/static/docs.js` starts it (no inline script).
    private static let page = """
        <!doctype html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <meta name="viewport" content="width=device-width, initial-scale=1">
          <title>chat-server API</title>
          <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
        </head>
        <body>
          <div id="swagger-ui"></div>
          <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
          <script src="/static/docs.js"></script>
        </body>
        </html>
        """
}
