/// Every error code the server sends, in HTTP error bodies (`{"error": {"code", "message"}}`)
/// and in WebSocket `error` frames: the one list clients match on. docs/errors.md is generated
/// from it, and tests hold the OpenAPI document and docs/protocol.md to it.
public enum ErrorCode: String, CaseIterable, Codable, Sendable {
    // Requests and frames
    case validationFailed = "validation_failed"
    case invalidJSON = "invalid_json"
    case invalidForm = "invalid_form"
    case unknownType = "unknown_type"
    case unsupportedFrame = "unsupported_frame"
    case unsupportedGrantType = "unsupported_grant_type"
    case unsupportedMediaType = "unsupported_media_type"
    case bodyTooLarge = "body_too_large"
    case badRequest = "bad_request"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case upgradeRequired = "upgrade_required"
    // Accounts and sessions
    case nameTaken = "name_taken"
    case emailTaken = "email_taken"
    case invalidCredentials = "invalid_credentials"
    case wrongPassword = "wrong_password"
    case tooManyAttempts = "too_many_attempts"
    case notAuthenticated = "not_authenticated"
    case crossSiteRequest = "cross_site_request"
    case adminOnly = "admin_only"
    // Chats and members
    case chatNotFound = "chat_not_found"
    case userNotFound = "user_not_found"
    case notAMember = "not_a_member"
    case creatorOnly = "creator_only"
    case alreadyMember = "already_member"
    case privateChatFull = "private_chat_full"
    case privateChatWithSelf = "private_chat_with_self"
    case creatorCannotBeRemoved = "creator_cannot_be_removed"
    case resumeTooFar = "resume_too_far"
    case resyncRequired = "resync_required"
    // Messages
    case messageNotFound = "message_not_found"
    case notSender = "not_sender"
    case messageDeleted = "message_deleted"
    case invalidReply = "invalid_reply"
    // Load and availability
    case rateLimited = "rate_limited"
    case overloaded
    case tooManyConnections = "too_many_connections"
    case storageUnavailable = "storage_unavailable"
    case databaseUnreachable = "database_unreachable"
    case migrationsPending = "migrations_pending"
    case clusterUnreachable = "cluster_unreachable"
    case clusterSecretMismatch = "cluster_secret_mismatch"
    case clusterSettingsMismatch = "cluster_settings_mismatch"
    case internalError = "internal_error"

    /// The HTTP statuses an error body with this code comes with; empty when only WebSocket
    /// `error` frames carry it.
    public var httpStatuses: [Int] {
        switch self {
        case .invalidJSON, .invalidForm, .unsupportedGrantType, .badRequest: [400]
        case .invalidCredentials, .notAuthenticated: [401]
        case .wrongPassword, .crossSiteRequest, .adminOnly, .creatorOnly, .notSender: [403]
        case .notFound, .chatNotFound, .userNotFound, .notAMember, .messageNotFound: [404]
        case .methodNotAllowed: [405]
        case .nameTaken, .emailTaken, .alreadyMember, .privateChatFull, .privateChatWithSelf, .creatorCannotBeRemoved,
            .messageDeleted:
            [409]
        case .bodyTooLarge: [413]
        case .unsupportedMediaType: [415]
        case .validationFailed: [422]
        case .upgradeRequired: [426]
        case .tooManyAttempts: [429]
        case .tooManyConnections: [429, 503]
        case .internalError: [500]
        case .overloaded, .storageUnavailable, .databaseUnreachable, .migrationsPending, .clusterUnreachable,
            .clusterSecretMismatch, .clusterSettingsMismatch:
            [503]
        case .unknownType, .unsupportedFrame, .resumeTooFar, .resyncRequired, .rateLimited, .invalidReply: []
        }
    }

    /// Whether WebSocket `error` frames carry it.
    public var isInErrorFrames: Bool {
        switch self {
        case .validationFailed, .invalidJSON, .unknownType, .unsupportedFrame, .notAMember, .resumeTooFar,
            .resyncRequired, .rateLimited, .overloaded, .storageUnavailable, .internalError, .invalidReply:
            true
        default: false
        }
    }

    /// What it means, and what a client does about it.
    public var meaning: String {
        switch self {
        case .validationFailed:
            "A field or parameter is missing, mistyped or out of range; the message names it. Fix the input."
        case .invalidJSON:
            "The body or frame is not a JSON object, or repeats a key in one object."
        case .invalidForm: "The log-in form cannot be read, for example because a field repeats."
        case .unknownType: "A frame's `type` is missing or not one of `send`, `read`, `typing`, `resume`."
        case .unsupportedFrame: "A binary WebSocket frame: the protocol uses JSON text frames only."
        case .unsupportedGrantType: "The log-in form's `grant_type` is not `password`."
        case .unsupportedMediaType: "The body has a content type this endpoint does not take; the message says which."
        case .bodyTooLarge: "The body is larger than `CHAT_MAX_BODY_BYTES`."
        case .badRequest: "A malformed request the HTTP layer refused (400, or the other 4xx status it raised)."
        case .notFound: "No such endpoint or file."
        case .methodNotAllowed: "The path exists, but not with this method; `Allow` lists the ones it takes."
        case .upgradeRequired: "`/ws` was asked for without a WebSocket handshake."
        case .nameTaken: "Registration: the name is taken (compared ignoring case)."
        case .emailTaken: "Registration: the email is registered already (compared ignoring case)."
        case .invalidCredentials: "Log-in: unknown name or email, or the wrong password (not told apart)."
        case .wrongPassword: "Password change: the current password given is wrong."
        case .tooManyAttempts: "Too many failed log-ins for the account or the address: wait `Retry-After` seconds."
        case .notAuthenticated:
            "No token, or an invalid, expired or revoked one (a logout or password change revokes them). Log in again."
        case .crossSiteRequest: "Cookie authentication from a foreign or missing `Origin`: a cross-site request."
        case .adminOnly: "Only administrators may do this."
        case .chatNotFound: "The chat does not exist or you are not a member (not told apart)."
        case .userNotFound: "No user with that id."
        case .notAMember:
            "The user is not a member of the chat; on a WebSocket, this connection does not follow that chat."
        case .creatorOnly: "Only the chat's creator manages its members."
        case .alreadyMember: "The user is a member already."
        case .privateChatFull: "A private chat has two members at most."
        case .privateChatWithSelf: "A private chat was asked for with yourself."
        case .creatorCannotBeRemoved: "The chat's creator cannot be removed."
        case .resumeTooFar: "More than 1,000 messages were missed: page through `GET /history` first, then resume."
        case .resyncRequired:
            "`resume` asked for messages after the chat's last `seq`: the database was restored from a backup. "
                + "Drop what you hold of the chat and read it again with `GET /history`."
        case .messageNotFound: "The message does not exist or is in a chat you are not a member of (not told apart)."
        case .notSender:
            "Only the sender edits a message; the sender, or the creator of a GROUP chat, deletes it."
        case .messageDeleted: "The message was deleted: a tombstone cannot be edited."
        case .invalidReply: "`reply_to` names no message of the same chat. Nothing was stored."
        case .rateLimited:
            "Too many sends on this connection; nothing was stored. Send the same frame again after `retry_after_ms`."
        case .overloaded:
            "More sends are waiting to be stored than the server takes; nothing was stored. "
                + "Send the same frame again after `retry_after_ms` (HTTP: `Retry-After`)."
        case .tooManyConnections:
            "Over a connection limit: 429 for your own WebSockets (`CHAT_WS_CONNECTIONS_PER_USER`), "
                + "503 for the server's (`CHAT_MAX_CONNECTIONS`). Close one, or retry after `Retry-After`."
        case .storageUnavailable: "The database is unreachable or failing. Retry after a pause; nothing was lost."
        case .databaseUnreachable: "`/health/ready`: this node cannot reach its database."
        case .migrationsPending: "`/health/ready`: the database lacks migrations this build needs."
        case .clusterUnreachable: "`/health/ready`: this node does not hear the other nodes through the database yet."
        case .clusterSecretMismatch:
            "`/health/ready`: this node signs sessions with another key than a live node on its database, so each "
                + "refuses the other's tokens. Set the same `CHAT_JWT_SECRET` on every node, or none outside prod."
        case .clusterSettingsMismatch:
            "`/health/ready`: this node's token lifetime or password hashing differs from a live node's "
                + "(docs/scaling.md lists the settings every node shares)."
        case .internalError: "A server bug; the details are only in the server's log."
        }
    }
}
