import ChatProtocol
import Foundation
import Testing

/// The bodies written in place by `JSONWriter` (history pages, search results) are the JSON
/// their `Codable` conformance gives, so a client cannot tell which wrote them.
@Suite struct JSONWriterTests {
    static let texts = [
        "plain", "", #"quotes " and \ backslashes"#, "lines\nand\r\ttabs",
        "bell \u{7} nul \u{0} escape \u{1B} us \u{1F}",
        "backspace \u{8} form feed \u{C}", "слэш / and </script>", "emoji 👩‍👩‍👧 and é", "del \u{7F} and \u{2028}",
    ]

    static let messages: [MessagePayload] = texts.enumerated().map { index, text in
        let timestamp = Date(timeIntervalSince1970: 1_700_000_000.25 + Double(index))
        return MessagePayload(
            id: MessageID(Int64(index) + 1), chatID: 7, seq: Int64(index) + 1, senderID: 3,
            clientID: index.isMultiple(of: 2) ? "c-\(index)" : nil, text: text, timestamp: timestamp,
            isRead: index.isMultiple(of: 3), replyTo: index > 2 ? MessageID(Int64(index) - 1) : nil,
            editedAt: index.isMultiple(of: 4) ? timestamp.addingTimeInterval(61.5) : nil, deleted: index == 5,
            updateSeq: Int64(index * 2))
    }

    /// Both encodings parsed as JSON values.
    static func parsedBoth<T: Encodable & JSONWritable>(_ value: T) throws -> (written: NSObject, encoded: NSObject) {
        var writer = JSONWriter()
        value.write(to: &writer)
        let written = try JSONSerialization.jsonObject(with: Data(writer.bytes), options: [.fragmentsAllowed])
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value), options: [.fragmentsAllowed])
        return (try #require(written as? NSObject), try #require(encoded as? NSObject))
    }

    @Test func aHistoryPageIsTheJSONOfItsCodableConformance() throws {
        let (written, encoded) = try Self.parsedBoth(Self.messages)
        #expect(written == encoded)
        var writer = JSONWriter()
        Self.messages.write(to: &writer)
        #expect(try JSONDecoder().decode([MessagePayload].self, from: Data(writer.bytes)) == Self.messages)
    }

    @Test func searchResultsAreTheJSONOfTheirCodableConformance() throws {
        let hits = Self.messages.map { SearchHitPayload(message: $0, snippet: "<mark>\($0.text)</mark>") }
        for results in [
            SearchResultsPayload(messages: hits, next: 42), SearchResultsPayload(messages: [], next: nil),
        ] {
            let (written, encoded) = try Self.parsedBoth(results)
            #expect(written == encoded)
        }
    }

    @Test func anEmptyPageIsAnEmptyArray() {
        var writer = JSONWriter()
        [MessagePayload]().write(to: &writer)
        #expect(writer.bytes == Array("[]".utf8))
    }
}
