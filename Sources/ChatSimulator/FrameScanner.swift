/// The few fields the simulator reads from a server frame.
struct ScannedFrame: Equatable {
    enum Kind: Equatable {
        case ready, message, ack, messageUpdated, resumed, error, other
    }

    var kind: Kind
    /// For `message`, `ack` and `message_updated`: the message's chat, `seq`, id and
    /// `update_seq` (0 from servers without edits). For `resumed`: the chat.
    var chatID: Int64?
    var seq: Int64?
    var messageID: Int64?
    var updateSeq: Int64 = 0
    /// For `message` and `ack`: the client id, when it is in the simulator's format.
    var clientID: ClientID?
    /// For `ack`: whether the send was a repeat.
    var duplicate = false
}

/// Reads the fields the simulator needs from a server frame without decoding the JSON into
/// objects: decoding every frame would make the simulator, not the server, the bottleneck at
/// the rates it measures. Rare frames (`ready`, `error`) are decoded in full by the caller.
///
/// Looking for a key's bytes (`"seq":`) is safe anywhere in the frame: inside a JSON string
/// every quote is escaped, so the unescaped quotes of a key cannot appear there.
enum FrameScanner {
    static func scan(_ text: String) -> ScannedFrame {
        var text = text
        return text.withUTF8 { scan(UnsafeRawBufferPointer($0)) }
    }

    static func scan(_ bytes: UnsafeRawBufferPointer) -> ScannedFrame {
        let type = string(after: typeKey, in: bytes)
        let kind = type.flatMap { type in kinds.first { type.elementsEqual($0.type) }?.kind } ?? .other
        var frame = ScannedFrame(kind: kind)
        guard kind == .message || kind == .ack || kind == .messageUpdated || kind == .resumed else { return frame }
        frame.chatID = integer(after: chatIDKey, in: bytes)
        guard kind != .resumed else { return frame }
        frame.seq = integer(after: seqKey, in: bytes)
        frame.messageID = integer(after: idKey, in: bytes)
        frame.updateSeq = integer(after: updateSeqKey, in: bytes) ?? 0
        frame.clientID = string(after: clientIDKey, in: bytes).flatMap { ClientID(bytes: $0) }
        frame.duplicate = kind == .ack && find(duplicateTrue, in: bytes) != nil
        return frame
    }

    private static let typeKey = Array(#""type":""#.utf8)
    private static let chatIDKey = Array(#""chat_id":"#.utf8)
    private static let seqKey = Array(#""seq":"#.utf8)
    private static let updateSeqKey = Array(#""update_seq":"#.utf8)
    private static let idKey = Array(#""id":"#.utf8)
    private static let clientIDKey = Array(#""client_id":""#.utf8)
    private static let duplicateTrue = Array(#""duplicate":true"#.utf8)
    private static let kinds: [(type: [UInt8], kind: ScannedFrame.Kind)] = [
        (Array("message".utf8), .message), (Array("ack".utf8), .ack), (Array("ready".utf8), .ready),
        (Array("message_updated".utf8), .messageUpdated), (Array("resumed".utf8), .resumed),
        (Array("error".utf8), .error),
    ]

    /// The index just after the first occurrence of `pattern`.
    private static func find(_ pattern: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
        guard pattern.count <= bytes.count, let first = pattern.first else { return nil }
        var index = 0
        let last = bytes.count - pattern.count
        while index <= last {
            if bytes[index] == first {
                var matched = 1
                while matched < pattern.count, bytes[index + matched] == pattern[matched] { matched += 1 }
                if matched == pattern.count { return index + pattern.count }
            }
            index += 1
        }
        return nil
    }

    private static func integer(after key: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int64? {
        guard var index = find(key, in: bytes) else { return nil }
        var value: Int64 = 0
        var digits = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9"), digits < 18 {
            value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
            index += 1
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    /// A string value's bytes, when it has no escapes (types and client ids have none).
    private static func string(after key: [UInt8], in bytes: UnsafeRawBufferPointer) -> Slice<UnsafeRawBufferPointer>? {
        guard let start = find(key, in: bytes) else { return nil }
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
            if bytes[end] == UInt8(ascii: "\\") { return nil }
            end += 1
        }
        return end < bytes.count ? bytes[start..<end] : nil
    }
}
