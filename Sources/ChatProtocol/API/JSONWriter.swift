import Foundation

/// Writes JSON text straight into bytes, for the bodies the server writes most: history pages
/// and search results, up to 1,000 messages each. `JSONEncoder` builds a tree of boxed values
/// and dictionaries first, which costs about 60,000 instructions per message here (callgrind;
/// docs/benchmarks.md); writing the fields in place costs a tenth of that.
///
/// A type that writes itself keeps its `Codable` conformance for everything else; a test checks
/// that both give the same JSON.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    /// JSON syntax or an object key with its quotes, written as is: `{"id":`.
    public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func integer(_ value: Int64) {
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func bool(_ value: Bool) {
        raw(value ? "true" : "false")
    }

    public mutating func null() {
        raw("null")
    }

    /// A JSON string: quotes, backslashes and control characters escaped (RFC 8259, section
    /// 7), everything else as UTF-8, `/` included (as `JSONEncoder` with `.withoutEscapingSlashes`).
    public mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw(#"\""#)
            case UInt8(ascii: "\\"): raw(#"\\"#)
            case UInt8(ascii: "\n"): raw(#"\n"#)
            case UInt8(ascii: "\r"): raw(#"\r"#)
            case UInt8(ascii: "\t"): raw(#"\t"#)
            case ..<0x20:
                raw(#"\u00"#)
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func timestamp(_ date: Date) {
        string(ISOTimestamp.format(date))
    }

    /// Each element, separated by commas, inside `[` and `]`.
    public mutating func array<Element: JSONWritable>(_ elements: [Element]) {
        raw("[")
        for (index, element) in elements.enumerated() {
            if index > 0 { raw(",") }
            element.write(to: &self)
        }
        raw("]")
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}

/// A value that writes its own JSON with a ``JSONWriter``, the same JSON its `Encodable`
/// conformance gives.
public protocol JSONWritable {
    func write(to writer: inout JSONWriter)
}

extension Array: JSONWritable where Element: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writer.array(self)
    }
}
