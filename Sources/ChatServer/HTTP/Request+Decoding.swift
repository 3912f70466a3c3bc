import ChatProtocol
import Foundation
import Hummingbird
import NIOCore

extension Request {
    /// Decodes a JSON body of at most `maxBytes` bytes.
    /// - Throws: 415 without a JSON content type, 413 when too large, 400 for malformed JSON
    ///   or a key repeated in an object, 422 naming the field for a missing, null or mistyped
    ///   value.
    func decodeJSON<T: Decodable>(as type: T.Type, maxBytes: Int) async throws -> T {
        guard hasContentType("application/json") else {
            throw APIError.unsupportedMediaType(expected: "application/json")
        }
        let body = try await body.collect(upTo: maxBytes)
        if let key = DuplicateKeyCheck.firstDuplicate(in: body.readableBytesView) {
            throw APIError(status: .badRequest, code: .invalidJSON, message: "The key \"\(key)\" appears twice.")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch let error as DecodingError {
            throw Self.apiError(error)
        }
    }

    /// Reads an `application/x-www-form-urlencoded` body of at most `maxBytes` bytes as its
    /// fields. Names are taken literally (no `a[b]` nesting) and each may appear once: a form
    /// repeating a field is ambiguous, and is refused rather than read one way or the other.
    /// - Throws: 415 without a form content type, 413 when too large, 400 for a form that
    ///   cannot be read.
    func formFields(maxBytes: Int) async throws -> [String: String] {
        guard hasContentType("application/x-www-form-urlencoded") else {
            throw APIError.unsupportedMediaType(expected: "application/x-www-form-urlencoded")
        }
        let body = String(buffer: try await body.collect(upTo: maxBytes))
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.formDecoded(parts[0]), let value = Self.formDecoded(parts.last ?? ""),
                fields.updateValue(parts.count == 2 ? value : "", forKey: name) == nil
            else {
                throw APIError(
                    status: .badRequest, code: .invalidForm,
                    message: "The form body could not be read (each field may appear once).")
            }
        }
        return fields
    }

    private static func formDecoded(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// An optional integer query parameter.
    /// - Throws: 422 when present but not an integer.
    func queryInteger(_ name: String) throws -> Int64? {
        guard let text = uri.queryParameters.get(name) else { return nil }
        guard let value = Int64(text) else { throw ChatError.invalidField(name, "must be an integer") }
        return value
    }

    private func hasContentType(_ mediaType: String) -> Bool {
        guard let value = headers[.contentType] else { return false }
        let essence = value.split(separator: ";", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces) ?? ""
        return essence.lowercased() == mediaType
    }

    private static func apiError(_ error: DecodingError) -> any Error {
        ChatError(decoding: error) ?? APIError.invalidJSON()
    }
}

extension Int64Identifier {
    /// Reads a path parameter.
    /// - Throws: 422 when it is not an integer.
    init(parameter name: String, in context: some RequestContext) throws {
        guard let text = context.parameters.get(name), let value = Int64(text) else {
            throw ChatError.invalidField(name, "must be an integer")
        }
        self.init(value)
    }
}
