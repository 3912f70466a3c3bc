import ChatProtocol
import Foundation
import HTTPTypes
import Hummingbird

/// An error response in the API's one shape, `{"error": {"code", "message"}}`. Every 4xx and
/// 5xx the server sends is built here.
public struct APIError: HTTPResponseError, Equatable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public var headers: HTTPFields = [:]

    public init(status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// The status and headers a domain error is reported with.
    public init(_ error: ChatError) {
        let status: HTTPResponse.Status
        var headers: HTTPFields = [:]
        switch error {
        case .invalidField: status = .unprocessableContent
        case .invalidCredentials, .notAuthenticated:
            status = .unauthorized
            headers[.wwwAuthenticate] = "Bearer"
        case .adminOnly, .creatorOnly, .wrongPassword: status = .forbidden
        case .chatNotFound, .userNotFound, .notAMember: status = .notFound
        case .nameTaken, .emailTaken, .alreadyMember, .privateChatFull, .privateChatWithSelf, .creatorCannotBeRemoved:
            status = .conflict
        case .tooManyLoginAttempts(let seconds):
            status = .tooManyRequests
            headers[.retryAfter] = "\(seconds)"
        case .storageUnavailable:
            status = .serviceUnavailable
            headers[.retryAfter] = "1"
        case .overloaded(let milliseconds):
            status = .serviceUnavailable
            headers[.retryAfter] = "\(max(1, (milliseconds + 999) / 1000))"
        }
        self.init(status: status, code: error.code, message: error.message, headers: headers)
    }

    /// Hummingbird's own errors (no route, body too large, ...) in our shape. Their
    /// messages are not passed on: only the status is trusted.
    init(status: HTTPResponse.Status) {
        switch status {
        case .notFound: self.init(status: status, code: "not_found", message: "No such endpoint.")
        case .contentTooLarge:
            self.init(status: status, code: "body_too_large", message: "The request body is too large.")
        case .methodNotAllowed: self.init(status: status, code: "method_not_allowed", message: "Method not allowed.")
        default:
            let code = status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
            self.init(status: status, code: code.isEmpty ? "http_\(status.code)" : code, message: status.reasonPhrase)
        }
    }

    static let unexpected = APIError(
        status: .internalServerError, code: "internal_error", message: "Something went wrong on our side.")

    static func invalidJSON() -> APIError {
        APIError(status: .badRequest, code: "invalid_json", message: "The request body is not valid JSON.")
    }

    static func unsupportedMediaType(expected: String) -> APIError {
        APIError(
            status: .unsupportedMediaType, code: "unsupported_media_type",
            message: "Send the request body as \(expected).")
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try JSONResponse.make(ErrorPayload(code: code, message: message), status: status)
        response.headers.append(contentsOf: headers)
        return response
    }
}
