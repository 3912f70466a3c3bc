import ChatProtocol
import Foundation

/// The rules every user-supplied string passes before it is stored. Each check returns the
/// normalized value or throws ``ChatError/invalidField(_:_:)`` naming the field.
///
/// Control characters are rejected everywhere except newlines and tabs in message text:
/// they cannot display, they forge log lines, and PostgreSQL refuses NUL in `text`.
public struct InputRules: Sendable, Equatable {
    public static let maxNameLength = 50
    public static let maxEmailLength = 254
    public static let maxChatNameLength = 100
    public static let maxClientIDLength = 64

    /// Shortest password accepted at registration, in characters.
    public var minPasswordLength: Int
    /// Longest message text accepted, in characters.
    public var maxMessageLength: Int

    public init(minPasswordLength: Int = 8, maxMessageLength: Int = 4096) {
        self.minPasswordLength = minPasswordLength
        self.maxMessageLength = maxMessageLength
    }

    /// These rules as a client sees them (`GET /limits`); `maxPasswordBytes` is the password
    /// hash's input limit.
    public func limits(maxPasswordBytes: Int) -> InputLimits {
        InputLimits(
            maxMessageLength: maxMessageLength, maxUserNameLength: Self.maxNameLength,
            maxEmailLength: Self.maxEmailLength, maxChatNameLength: Self.maxChatNameLength,
            minPasswordLength: minPasswordLength, maxPasswordBytes: maxPasswordBytes)
    }

    /// A display name: 1–50 characters after trimming, no `@` (so it never reads as an email
    /// when logging in), no control characters.
    public func userName(_ raw: String) throws -> String {
        let name = try Self.trimmed(raw, field: "name", maxLength: Self.maxNameLength)
        guard !name.contains("@") else { throw ChatError.invalidField("name", "must not contain '@'") }
        return name
    }

    /// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
    public func email(_ raw: String) throws -> String {
        let email = try Self.trimmed(raw, field: "email", maxLength: Self.maxEmailLength)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64,
            !email.contains(where: \.isWhitespace)
        else { throw ChatError.invalidField("email", "is not a valid email address") }
        let domainLabels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        guard domainLabels.count >= 2, domainLabels.allSatisfy({ !$0.isEmpty }) else {
            throw ChatError.invalidField("email", "is not a valid email address")
        }
        return email
    }

    /// A new password: at least ``minPasswordLength`` characters and at most `maxBytes` UTF-8
    /// bytes (the hash's input limit: longer passwords are refused, never truncated). Returned
    /// in Unicode NFC so the same password typed on any keyboard verifies.
    public func newPassword(_ raw: String, maxBytes: Int) throws -> String {
        let password = raw.precomposedStringWithCanonicalMapping
        guard !password.unicodeScalars.contains("\u{0}") else {
            throw ChatError.invalidField("password", "must not contain NUL characters")
        }
        guard password.count >= minPasswordLength else {
            throw ChatError.invalidField("password", "must be at least \(minPasswordLength) characters long")
        }
        guard password.utf8.count <= maxBytes else {
            throw ChatError.invalidField("password", "must be at most \(maxBytes) bytes long in UTF-8")
        }
        return password
    }

    /// A chat name: 1–100 characters after trimming, no control characters.
    public func chatName(_ raw: String) throws -> String {
        try Self.trimmed(raw, field: "name", maxLength: Self.maxChatNameLength)
    }

    /// Message text, kept verbatim: not blank, at most ``maxMessageLength`` characters, no
    /// control characters other than newline, carriage return and tab.
    public func messageText(_ raw: String) throws -> String {
        guard !raw.allSatisfy(\.isWhitespace) else { throw ChatError.invalidField("text", "must not be empty") }
        guard raw.count <= maxMessageLength else {
            throw ChatError.invalidField("text", "must be at most \(maxMessageLength) characters long")
        }
        let allowed: Set<Unicode.Scalar> = ["\n", "\r", "\t"]
        guard
            !raw.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && !allowed.contains($0) })
        else { throw ChatError.invalidField("text", "must not contain control characters") }
        return raw
    }

    /// A client-chosen message id: 1–64 printable ASCII characters.
    public func clientID(_ raw: String) throws -> String {
        guard !raw.isEmpty, raw.utf8.count <= Self.maxClientIDLength,
            raw.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else {
            throw ChatError.invalidField("client_id", "must be 1–\(Self.maxClientIDLength) printable ASCII characters")
        }
        return raw
    }

    private static func trimmed(_ raw: String, field: String, maxLength: Int) throws -> String {
        let value = raw.trimmingCharacters(in: .whitespacesAndNewlines).precomposedStringWithCanonicalMapping
        guard !value.isEmpty else { throw ChatError.invalidField(field, "must not be empty") }
        guard value.count <= maxLength else {
            throw ChatError.invalidField(field, "must be at most \(maxLength) characters long")
        }
        guard !value.unicodeScalars.contains(where: isControl) else {
            throw ChatError.invalidField(field, "must not contain control characters")
        }
        return value
    }

    /// Whether `text` could be part of a stored name or email, which never hold control
    /// characters. Lookups of anything else are answered without asking the database (where,
    /// on PostgreSQL, a NUL in a parameter is an error rather than a miss).
    static func couldBeStoredName(_ text: String) -> Bool {
        !text.unicodeScalars.contains(where: isControl)
    }

    /// Characters that do not display as text: C0/C1 controls, line and paragraph separators,
    /// and the bidirectional overrides used to disguise names (U+202A–U+202E, U+2066–U+2069).
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: return true
        default: return (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
        }
    }
}
