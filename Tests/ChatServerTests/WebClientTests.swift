import ChatTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ChatServer

@Suite("Web client pages")
struct WebClientTests {
    static func cookie(of user: TestUser) -> HTTPFields { [.cookie: "access_token=\(user.token)"] }

    /// The headers every page must carry: no inline script, no framing, no sniffing.
    static func expectPageHeaders(_ response: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) {
        let policy = response.headers[.contentSecurityPolicy] ?? ""
        #expect(policy.contains("script-src 'self'"), sourceLocation: sourceLocation)
        #expect(policy.contains("frame-ancestors 'none'"), sourceLocation: sourceLocation)
        #expect(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), sourceLocation: sourceLocation)
        #expect(response.headers[.xContentTypeOptions] == "nosniff", sourceLocation: sourceLocation)
        #expect(response.headers[.contentType] == "text/html; charset=utf-8", sourceLocation: sourceLocation)
    }

    @Test func theIndexOffersLogInUntilASessionWorks() async throws {
        try await TestApp.run { api in
            let visitor = try await api.send(.get, "/")
            #expect(visitor.status == .ok && visitor.bodyText.contains("id=\"login-form\""))
            Self.expectPageHeaders(visitor)

            let forged = try await api.send(.get, "/", headers: [.cookie: "access_token=not-a-token"])
            #expect(forged.status == .ok && forged.bodyText.contains("id=\"login-form\""), "a dead cookie is no 401")

            let arina = try await api.user("Arina")
            let home = try await api.send(.get, "/", headers: Self.cookie(of: arina))
            #expect(home.status == .ok && home.bodyText.contains("id=\"chat-list\""))
            Self.expectPageHeaders(home)

            _ = try await api.send(.post, "/auth/logout", as: arina)
            let afterLogOut = try await api.send(.get, "/", headers: Self.cookie(of: arina))
            #expect(afterLogOut.bodyText.contains("id=\"login-form\""), "a revoked session is logged out")
        }
    }

    @Test func theChatPageIsForMembersOnly() async throws {
        try await TestApp.run { api in
            let arina = try await api.user("Arina")
            let vlad = try await api.user("Vlad")
            let chat = try await api.createChat("Team", as: arina)

            let member = try await api.send(.get, "/chat/\(chat.id)", headers: Self.cookie(of: arina))
            #expect(member.status == .ok && member.bodyText.contains("id=\"message-list\""))
            Self.expectPageHeaders(member)

            for path in ["/chat/\(chat.id)", "/chat/999999", "/chat/abc"] {
                let stranger = try await api.send(.get, path, headers: Self.cookie(of: vlad))
                #expect(stranger.status == .notFound && stranger.bodyText.contains("Chat not found"), "\(path)")
                Self.expectPageHeaders(stranger)
            }

            let loggedOut = try await api.send(.get, "/chat/\(chat.id)")
            #expect(loggedOut.status == .seeOther && loggedOut.headers[.location] == "/")
        }
    }

    @Test func aBrowserGetsErrorPagesAndAPIClientsGetJSON() async throws {
        try await TestApp.run { api in
            let browser: HTTPFields = [.accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"]
            let missing = try await api.send(.get, "/nonexistent", headers: browser)
            #expect(missing.status == .notFound && missing.bodyText.contains("<h1>Page not found</h1>"))
            #expect(missing.bodyText.contains("Error 404") && !missing.bodyText.contains("{{"))
            Self.expectPageHeaders(missing)
            let wrongMethod = try await api.send(.delete, "/chats", headers: browser)
            #expect(wrongMethod.status == .methodNotAllowed && wrongMethod.bodyText.contains("<h1>Not available</h1>"))
            #expect(wrongMethod.headers[.allow] != nil, "the page keeps the error's headers")

            for accept in [nil, "*/*", "application/json", "application/json, text/html;q=0.5", "text/html;q=0"] {
                let headers: HTTPFields = accept.map { [.accept: $0] } ?? [:]
                let response = try await api.send(.get, "/nonexistent", headers: headers)
                #expect(response.status == .notFound, "Accept: \(accept ?? "none")")
                #expect(response.error?.code == "not_found", "Accept: \(accept ?? "none") gets JSON")
            }
        }
    }

    @Test func errorPagesShowTheMessageAsText() {
        let body = ErrorPages(assets: WebAssets()).html(
            for: APIError(
                status: .forbidden, code: .crossSiteRequest, message: "<script>alert(1)</script> & \"quotes\""))
        #expect(body.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"))
        #expect(!body.contains("<script>"))
    }

    @Test func staticFilesAreTypedAndRevalidated() async throws {
        try await TestApp.run { api in
            for (path, type) in [
                ("/static/chat.js", "text/javascript; charset=utf-8"), ("/static/app.css", "text/css; charset=utf-8"),
                ("/static/icon.svg", "image/svg+xml"),
            ] {
                let file = try await api.send(.get, path)
                #expect(file.status == .ok && file.headers[.contentType] == type, "\(path)")
                #expect(file.headers[.xContentTypeOptions] == "nosniff")
                let etag = try #require(file.headers[.eTag])
                for known in [etag, "\"other\", \(etag)", "W/\(etag)"] {
                    let again = try await api.send(.get, path, headers: [.ifNoneMatch: known])
                    #expect(again.status == .notModified && again.body.readableBytes == 0, "\(path) \(known)")
                }
                let stale = try await api.send(.get, path, headers: [.ifNoneMatch: "\"stale\""])
                #expect(stale.status == .ok && stale.body.readableBytes == file.body.readableBytes)
            }
            for path in ["/static/nothing.js", "/static/..%2FPackage.swift", "/static/%2e%2e%2fchat.html"] {
                let missing = try await api.send(.get, path)
                #expect(missing.status == .notFound && missing.bodyText.contains("\"code\""), "\(path)")
            }
        }
    }

    @Test func everyResponseForbidsFramingAndSniffing() async throws {
        try await TestApp.run { api in
            for path in ["/health/live", "/no/such/route", "/chats", "/openapi.json", "/docs"] {
                let response = try await api.send(.get, path)
                let policy = response.headers[.contentSecurityPolicy] ?? ""
                #expect(policy.contains("frame-ancestors 'none'"), "\(path)")
                #expect(response.headers[.xContentTypeOptions] == "nosniff", "\(path)")
                let scripts = policy.split(separator: ";").first { $0.contains("script-src") } ?? ""
                #expect(!scripts.contains("unsafe"), "\(path)")
            }
        }
    }

    /// The client's own rule, checked on every embedded file: user text only ever goes into
    /// the page as text, and nothing runs that the CSP would have to allow inline.
    @Test func theClientNeverParsesTextAsHTMLOrRunsInlineCode() throws {
        let assets = WebAssets()
        let names = EmbeddedResources.base64Files.keys.filter { $0.hasPrefix("web/") }.map { String($0.dropFirst(4)) }
        #expect(names.contains("chat.html") && names.contains("static/chat.js"))
        for name in names {
            let text = String(buffer: try #require(assets[name]).body)
            if name.hasSuffix(".js") {
                for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"]
                {
                    #expect(!text.contains(sink), "\(name) uses \(sink)")
                }
            }
            if name.hasSuffix(".html") {
                let inlineScript = try Regex(#"<script(?![^>]*\bsrc=)[^>]*>"#)
                #expect(!text.contains(inlineScript), "\(name) has an inline script")
                #expect(!text.contains(try Regex(#"\son[a-z]+="#)), "\(name) has an inline event handler")
                #expect(!text.contains(" style="), "\(name) has an inline style")
            }
        }
    }
}
