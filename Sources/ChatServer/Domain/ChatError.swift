import ChatProtocol

/// Every way a request can fail for a reason the caller can act on. The HTTP and WebSocket
/// layers map these to statuses and error frames; anything else is an internal error.
public enum ChatError: Error, Equatable, Sendable {
    /// A field is missing, malformed or outside its limits.
    case invalidField(_ field: String, _ reason: String)
    case nameTaken
    case emailTaken
    /// Unknown login or wrong password; deliberately indistinguishable.
    case invalidCredentials
    /// The current password given to change it is wrong.
    case wrongPassword
    /// Too many failed log-ins for the account or from the address (``LoginThrottle``).
    case tooManyLoginAttempts(retryAfterSeconds: Int)
    /// No token, or one that is invalid, expired, revoked, or whose user is gone.
    case notAuthenticated
    case adminOnly
    case creatorOnly
    /// The chat does not exist or the caller is not a member (the two are not distinguished).
    case chatNotFound
    case userNotFound
    case notAMember
    case alreadyMember
    case privateChatFull
    /// A private chat was asked for with the caller themselves.
    case privateChatWithSelf
    case creatorCannotBeRemoved
    /// A `resume` after the chat's last seq: the client holds positions from before a restore.
    case resyncRequired(lastSeq: Int64)
    /// A `resume` would return more than `limit` messages: the client pages through history.
    case resumeTooFar(limit: Int)
    /// The message does not exist or the caller is not a member of its chat.
    case messageNotFound
    /// The caller may not change this message: only its sender edits it, and only its sender or
    /// the creator of its GROUP chat deletes it.
    case notSender
    /// An edit of a deleted message.
    case messageDeleted
    /// A reply to a message that is not in the same chat.
    case invalidReply
    /// The database cannot be reached or failed; the request may be retried.
    case storageUnavailable
    /// More sends are waiting to be stored than the node takes (``SendAdmission``): nothing was
    /// stored, and the same send may be repeated after `retryAfterMilliseconds`.
    case overloaded(retryAfterMilliseconds: Int)

    /// Stable machine-readable code, shared by HTTP error bodies and WebSocket error frames.
    public var code: ErrorCode {
        switch self {
        case .invalidField: .validationFailed
        case .nameTaken: .nameTaken
        case .emailTaken: .emailTaken
        case .invalidCredentials: .invalidCredentials
        case .wrongPassword: .wrongPassword
        case .tooManyLoginAttempts: .tooManyAttempts
        case .notAuthenticated: .notAuthenticated
        case .adminOnly: .adminOnly
        case .creatorOnly: .creatorOnly
        case .chatNotFound: .chatNotFound
        case .userNotFound: .userNotFound
        case .notAMember: .notAMember
        case .alreadyMember: .alreadyMember
        case .privateChatFull: .privateChatFull
        case .privateChatWithSelf: .privateChatWithSelf
        case .creatorCannotBeRemoved: .creatorCannotBeRemoved
        case .resyncRequired: .resyncRequired
        case .resumeTooFar: .resumeTooFar
        case .messageNotFound: .messageNotFound
        case .notSender: .notSender
        case .messageDeleted: .messageDeleted
        case .invalidReply: .invalidReply
        case .storageUnavailable: .storageUnavailable
        case .overloaded: .overloaded
        }
    }

    /// A sentence safe to show to the user.
    public var message: String {
        switch self {
        case .invalidField(let field, let reason): "\(field): \(reason)"
        case .nameTaken: "That name is already taken."
        case .emailTaken: "That email is already registered."
        case .invalidCredentials: "Incorrect username or password."
        case .wrongPassword: "The current password is not correct."
        case .tooManyLoginAttempts(let seconds): "Too many failed log-ins. Try again in \(seconds) seconds."
        case .notAuthenticated: "Not authenticated."
        case .adminOnly: "Only administrators may do this."
        case .creatorOnly: "Only the chat's creator may manage its members."
        case .chatNotFound: "Chat not found."
        case .userNotFound: "User not found."
        case .notAMember: "That user is not a member of this chat."
        case .alreadyMember: "That user is already a member of this chat."
        case .privateChatFull: "A private chat has at most two members."
        case .privateChatWithSelf: "A private chat is between two people: choose someone other than yourself."
        case .creatorCannotBeRemoved: "The chat's creator cannot be removed."
        case .resyncRequired(let lastSeq):
            "after_seq is past the chat's last seq (\(lastSeq)): the database was restored. Read the chat again."
        case .resumeTooFar(let limit):
            "More than \(limit) messages were missed: page through GET /history, then resume from closer."
        case .messageNotFound: "Message not found."
        case .notSender: "Only the sender may edit this message; only the sender or the group's creator may delete it."
        case .messageDeleted: "This message was deleted and cannot be edited."
        case .invalidReply: "reply_to must name a message of the same chat."
        case .storageUnavailable: "The service is temporarily unavailable. Please retry."
        case .overloaded: "The server is busy and did not store this message. Retry shortly."
        }
    }
}
