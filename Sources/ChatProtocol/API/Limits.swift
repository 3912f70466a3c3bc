/// The input limits the server enforces (`GET /limits`), so that a client can check a form or
/// a message before it sends it instead of after a refusal. Lengths count characters as people
/// see them (extended grapheme clusters: an emoji with its modifiers is one), after the
/// trimming the server does; the password's upper bound is in UTF-8 bytes, as its hash takes it.
public struct InputLimits: Codable, Sendable, Equatable {
    public var maxMessageLength: Int
    public var maxUserNameLength: Int
    public var maxEmailLength: Int
    public var maxChatNameLength: Int
    public var minPasswordLength: Int
    public var maxPasswordBytes: Int

    public init(
        maxMessageLength: Int, maxUserNameLength: Int, maxEmailLength: Int, maxChatNameLength: Int,
        minPasswordLength: Int, maxPasswordBytes: Int
    ) {
        self.maxMessageLength = maxMessageLength
        self.maxUserNameLength = maxUserNameLength
        self.maxEmailLength = maxEmailLength
        self.maxChatNameLength = maxChatNameLength
        self.minPasswordLength = minPasswordLength
        self.maxPasswordBytes = maxPasswordBytes
    }

    enum CodingKeys: String, CodingKey {
        case maxMessageLength = "max_message_length"
        case maxUserNameLength = "max_user_name_length"
        case maxEmailLength = "max_email_length"
        case maxChatNameLength = "max_chat_name_length"
        case minPasswordLength = "min_password_length"
        case maxPasswordBytes = "max_password_bytes"
    }
}
