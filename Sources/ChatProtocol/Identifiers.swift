/// A database identifier wrapped in its own type, so a user id can never be passed where a
/// chat id is expected. Encodes as a bare JSON integer.
public protocol Int64Identifier: RawRepresentable, Hashable, Comparable, Codable, Sendable,
    CustomStringConvertible, ExpressibleByIntegerLiteral, LosslessStringConvertible
where RawValue == Int64 {
    init(_ rawValue: Int64)
}

extension Int64Identifier {
    public init(rawValue: Int64) { self.init(rawValue) }
    public init(integerLiteral value: Int64) { self.init(value) }

    public init?(_ description: String) {
        guard let value = Int64(description) else { return nil }
        self.init(value)
    }

    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(Int64.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { String(rawValue) }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Identifies a registered user.
public struct UserID: Int64Identifier {
    public let rawValue: Int64
    public init(_ rawValue: Int64) { self.rawValue = rawValue }
}

/// Identifies a chat (private or group).
public struct ChatID: Int64Identifier {
    public let rawValue: Int64
    public init(_ rawValue: Int64) { self.rawValue = rawValue }
}

/// Identifies a stored message (unique across all chats).
public struct MessageID: Int64Identifier {
    public let rawValue: Int64
    public init(_ rawValue: Int64) { self.rawValue = rawValue }
}
