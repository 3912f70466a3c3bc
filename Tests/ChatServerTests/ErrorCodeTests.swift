import ChatProtocol
import Foundation
import Testing

@testable import ChatServer

/// `ErrorCode` and `CloseCode` are the one list of codes: docs/errors.md is generated from
/// them, and the OpenAPI document and docs/protocol.md may name no other code and miss none.
@Suite("Error and close codes")
struct ErrorCodeTests {
    /// Rewrites docs/errors.md when `UPDATE_ERRORS_DOC=1`; otherwise fails while it differs.
    @Test func theReferenceIsGeneratedFromTheEnums() throws {
        let file = RepositoryFile.url("docs/errors.md")
        let generated = Self.reference()
        if ProcessInfo.processInfo.environment["UPDATE_ERRORS_DOC"] == "1" {
            try generated.write(to: file, atomically: true, encoding: .utf8)
        }
        let written = try String(contentsOf: file, encoding: .utf8)
        #expect(
            written == generated,
            "docs/errors.md is not what ErrorCode and CloseCode say: UPDATE_ERRORS_DOC=1 swift test --filter ErrorCodeTests"
        )
    }

    /// A domain error answers HTTP with its code's one status.
    @Test func everyDomainErrorHasItsCodesOneStatus() {
        let errors: [ChatError] = [
            .invalidField("name", "must not be empty"), .nameTaken, .emailTaken, .invalidCredentials, .wrongPassword,
            .tooManyLoginAttempts(retryAfterSeconds: 3), .notAuthenticated, .adminOnly, .creatorOnly, .chatNotFound,
            .userNotFound, .notAMember, .alreadyMember, .privateChatFull, .privateChatWithSelf, .creatorCannotBeRemoved,
            .storageUnavailable, .overloaded(retryAfterMilliseconds: 300),
        ]
        for error in errors {
            #expect(error.code.httpStatuses.count == 1, "\(error.code)")
            #expect(APIError(error).status.code == error.code.httpStatuses.first, "\(error.code)")
        }
    }

    /// The document's error body lists every code, and each error response names only codes
    /// that come with its status.
    @Test func theOpenAPIDocumentNamesEveryCodeAndNoOther() throws {
        let document = try #require(
            try JSONSerialization.jsonObject(with: APIDocuments.openAPI) as? [String: Any])
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let error = try #require(schemas["Error"] as? [String: Any])
        let detail = try #require((error["properties"] as? [String: Any])?["error"] as? [String: Any])
        let code = try #require((detail["properties"] as? [String: Any])?["code"] as? [String: Any])
        #expect(Set(code["enum"] as? [String] ?? []) == Set(ErrorCode.allCases.map(\.rawValue)))

        let paths = try #require(document["paths"] as? [String: [String: [String: Any]]])
        for (path, operations) in paths {
            for (method, operation) in operations {
                let parameters = Set(
                    (operation["parameters"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
                for (status, response) in operation["responses"] as? [String: [String: Any]] ?? [:] {
                    guard let status = Int(status), status >= 400 else { continue }
                    for name in Self.quotedCodes(in: response["description"] as? String ?? "")
                    where !parameters.contains(name) {
                        let known = ErrorCode(rawValue: name)
                        #expect(known != nil, "\(method) \(path) \(status) names `\(name)`, which is no code")
                        if let known {
                            #expect(
                                known.httpStatuses.contains(status),
                                "\(method) \(path): `\(name)` does not come with \(status)")
                        }
                    }
                }
            }
        }
    }

    /// docs/protocol.md's tables: the `error` frame's codes, the close codes, and the refused
    /// handshakes' codes with their statuses.
    @Test func theProtocolDocumentNamesEveryFrameAndCloseCode() throws {
        let protocolDocument = try RepositoryFile.text("docs/protocol.md")
        let frameCodes = Self.firstColumn(of: "| code | meaning |", in: protocolDocument)
        #expect(Set(frameCodes) == Set(ErrorCode.allCases.filter(\.isInErrorFrames).map { "`\($0.rawValue)`" }))
        let closeCodes = Self.firstColumn(of: "| code | meaning | what to do |", in: protocolDocument)
        #expect(closeCodes == CloseCode.allCases.map { String($0.rawValue) })
        let handshake = Self.rows(of: "| status | code | when |", in: protocolDocument)
        #expect(!handshake.isEmpty)
        for row in handshake {
            let code = ErrorCode(rawValue: row[1].trimmingCharacters(in: CharacterSet(charactersIn: "`")))
            #expect(code?.httpStatuses.contains(Int(row[0]) ?? 0) == true, "handshake row \(row)")
        }
    }

    // MARK: The reference page

    static func reference() -> String {
        var lines = [
            "# Error and close codes",
            "",
            "<!-- Generated from ErrorCode and CloseCode (Sources/ChatProtocol) by ErrorCodeTests:",
            "     UPDATE_ERRORS_DOC=1 swift test --filter ErrorCodeTests -->",
            "",
            "Every error the server answers has one shape, `{\"error\": {\"code\", \"message\"}}` over",
            "HTTP and `{\"type\": \"error\", \"code\", \"message\", \"ref\"}` on a WebSocket. Match on the",
            "`code`; the `message` is for people and may change. These are all the codes there are.",
            "",
            "## Error codes",
            "",
            "| code | HTTP status | in `error` frames | meaning |",
            "| --- | --- | --- | --- |",
        ]
        for code in ErrorCode.allCases {
            let statuses = code.httpStatuses.isEmpty ? "–" : code.httpStatuses.map(String.init).joined(separator: ", ")
            lines.append(
                "| `\(code.rawValue)` | \(statuses) | \(code.isInErrorFrames ? "yes" : "–") | \(code.meaning) |")
        }
        lines += [
            "",
            "## Close codes",
            "",
            "The codes the server closes a WebSocket with (docs/protocol.md, \"Closing\").",
            "",
            "| code | meaning | what to do |",
            "| --- | --- | --- |",
        ]
        for code in CloseCode.allCases {
            lines.append("| \(code.rawValue) | \(code.meaning) | \(code.remedy) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Reading the documents

    /// Backquoted words in snake case (`chat_not_found`), which is how descriptions name codes.
    static func quotedCodes(in text: String) -> [String] {
        text.split(separator: "`", omittingEmptySubsequences: false).enumerated()
            .filter { $0.offset % 2 == 1 }
            .map { String($0.element) }
            .filter { $0.contains("_") && $0.allSatisfy { $0.isLowercase || $0 == "_" } }
    }

    /// The cells of the table under `header`, row by row.
    static func rows(of header: String, in document: String) -> [[String]] {
        var rows: [[String]] = []
        var inTable = false
        for line in document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == header {
                inTable = true
            } else if inTable, line.hasPrefix("| ---") {
                continue
            } else if inTable, line.hasPrefix("|") {
                rows.append(line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) })
            } else if inTable {
                break
            }
        }
        return rows
    }

    static func firstColumn(of header: String, in document: String) -> [String] {
        rows(of: header, in: document).map { $0[0] }
    }
}
