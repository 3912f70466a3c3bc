import ChatProtocol
import ChatTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ChatServer

@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    /// "GET /history/{chat_id}" for every operation in the served document.
    static func documentedOperations() throws -> Set<String> {
        let document = try #require(
            try JSONSerialization.jsonObject(with: APIDocuments.openAPI) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        return Set(paths.flatMap { path, operations in operations.keys.map { "\($0.uppercased()) \(path)" } })
    }

    @Test func theRouterAndTheDocumentAgree() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            let config = try await TestApp.config(database: location)
            let store = try await makeStore(for: location, poolSize: 1, logger: .init(label: "test"))
            let components = try await ChatComponents(
                config: config, store: store, telemetry: Telemetry(), logger: .init(label: "test"))
            let routed = Set(buildRouter(components).routes.map { "\($0.method) \($0.path)" })
            let documented = try Self.documentedOperations()
            #expect(routed.subtracting(documented).isEmpty, "routes missing from openapi/openapi.json")
            #expect(documented.subtracting(routed).isEmpty, "documented operations with no route")
            #expect(routed.contains("POST /chat/add_user/{user_id}/{chat_id}"))
            await (store as? SQLiteChatStore)?.close()
        }
    }

    @Test func theDocumentAndItsPageAreServed() async throws {
        try await TestApp.run { api in
            let document = try await api.send(.get, "/openapi.json")
            #expect(document.status == .ok && document.headers[.contentType]?.hasPrefix("application/json") == true)
            let json = try JSONSerialization.jsonObject(with: Data(document.body.readableBytesView)) as? [String: Any]
            #expect(json?["openapi"] as? String == "3.1.0")
            #expect((json?["info"] as? [String: Any])?["version"] as? String == ProjectVersion.current)
            let page = try await api.send(.get, "/docs")
            #expect(page.status == .ok && page.bodyText.contains("/static/docs.js"))
            #expect(!page.bodyText.contains("https://"), "the reference page loads nothing from another host")
            #expect(page.headers[.contentSecurityPolicy] == ContentSecurityPolicy.webClient)
            let script = try await api.send(.get, "/static/docs.js")
            #expect(script.status == .ok && script.bodyText.contains("/openapi.json"))
            #expect(!script.bodyText.contains("https://"))
        }
    }
}
