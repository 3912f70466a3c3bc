import Foundation

/// How the API writes instants: ISO-8601 in UTC with milliseconds, e.g. `2026-11-25T14:08:33.120Z`.
public enum APITimestamp {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    private static let styleWithoutFraction = Date.ISO8601FormatStyle(timeZone: .gmt)

    /// Formats an instant for the wire.
    public static func string(from date: Date) -> String {
        style.format(date)
    }

    /// Parses an instant written with or without fractional seconds.
    public static func date(from string: String) -> Date? {
        (try? style.parse(string)) ?? (try? styleWithoutFraction.parse(string))
    }
}

extension KeyedEncodingContainer {
    mutating func encodeTimestamp(_ date: Date, forKey key: Key) throws {
        try encode(APITimestamp.string(from: date), forKey: key)
    }
}

extension KeyedDecodingContainer {
    func decodeTimestamp(forKey key: Key) throws -> Date {
        let text = try decode(String.self, forKey: key)
        guard let date = APITimestamp.date(from: text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "not an ISO-8601 timestamp")
        }
        return date
    }
}
