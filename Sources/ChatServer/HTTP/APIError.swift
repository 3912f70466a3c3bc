import ChatProtocol
import Foundation
import HTTPTypes
import Hummingbird

/// An error response in the API's one shape, `{"error": {"code", "message"}}`. Every 4xx and
/// 5xx the server sends is built here.
public struct APIError: HTTPResponseError, Equatable {
    public let status: HTTPResponse.Status
    public let code: ErrorCode
    public let message: String
    public var headers: HTTPFields = [:]

    public init(status: HTTPResponse.Status, code: ErrorCode, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// A domain error with its code's one status (``ErrorCode/httpStatuses``) and the headers
    /// that go with it.
    public init(_ error: ChatError) {
        var headers: HTTPFields = [:]
        switch error {
        case .invalidCredentials, .notAuthenticated: headers[.wwwAuthenticate] = "Bearer"
        case .tooManyLoginAttempts(let seconds): headers[.retryAfter] = "\(seconds)"
        case .storageUnavailable: headers[.retryAfter] = "1"
        case .overloaded(let milliseconds): headers[.retryAfter] = "\(max(1, (milliseconds + 999) / 1000))"
        default: break
        }
        let status = HTTPResponse.Status(code: error.code.httpStatuses.first ?? 500)
        self.init(status: status, code: error.code, message: error.message, headers: headers)
    }

    /// Hummingbird's own errors (no route, body too large, a malformed request, ...) in our
    /// shape. Their messages are not passed on: only the status is trusted.
    init(status: HTTPResponse.Status) {
        switch status {
        case .notFound: self.init(status: status, code: .notFound, message: "No such endpoint.")
        case .contentTooLarge: self.init(status: status, code: .bodyTooLarge, message: "The request body is too large.")
        case .methodNotAllowed: self.init(status: status, code: .methodNotAllowed, message: "Method not allowed.")
        case _ where status.kind == .clientError:
            self.init(status: status, code: .badRequest, message: "The request could not be read.")
        default: self.init(status: status, code: .internalError, message: "Something went wrong on our side.")
        }
    }

    static let unexpected = APIError(
        status: .internalServerError, code: .internalError, message: "Something went wrong on our side.")

    static func invalidJSON() -> APIError {
        APIError(status: .badRequest, code: .invalidJSON, message: "The request body is not valid JSON.")
    }

    static func unsupportedMediaType(expected: String) -> APIError {
        APIError(
            status: .unsupportedMediaType, code: .unsupportedMediaType, message: "Send the request body as \(expected)."
        )
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try JSONResponse.make(ErrorPayload(code: code.rawValue, message: message), status: status)
        response.headers.append(contentsOf: headers)
        return response
    }
}
