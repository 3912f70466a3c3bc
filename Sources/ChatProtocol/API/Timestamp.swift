import Foundation

/// How the API writes instants: ISO-8601 in UTC with milliseconds, e.g.
/// `2026-11-25T14:08:33.120Z`. Fields marked with it encode so under any JSON encoder.
@propertyWrapper
public struct ISOTimestamp: Codable, Sendable, Equatable {
    public var wrappedValue: Date

    public init(wrappedValue: Date) {
        self.wrappedValue = wrappedValue
    }

    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    private static let styleWithoutFraction = Date.ISO8601FormatStyle(timeZone: .gmt)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let date = (try? Self.style.parse(text)) ?? (try? Self.styleWithoutFraction.parse(text)) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "must be an ISO-8601 timestamp")
        }
        wrappedValue = date
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Self.format(wrappedValue))
    }

    /// `date` as this API writes timestamps: UTC with milliseconds.
    public static func format(_ date: Date) -> String {
        style.format(date)
    }
}
