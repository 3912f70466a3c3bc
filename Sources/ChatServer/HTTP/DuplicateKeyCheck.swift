import Foundation

/// Finds a key that appears twice in one JSON object. Foundation's decoder accepts such
/// documents and keeps one of the values; other parsers keep the other, so a proxy and the
/// server could disagree about what a request says. Requests and frames that repeat a key
/// are refused instead. Syntax errors are left to the decoder.
enum DuplicateKeyCheck {
    /// The first repeated key (unescaped), or nil when every object's keys are distinct.
    static func firstDuplicate(in json: some Collection<UInt8>) -> String? {
        let bytes = Array(json)
        // One entry per open container: the keys seen so far for objects, nil for arrays.
        var containers: [Set<String>?] = []
        var expectingKey = false
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "{"):
                containers.append([])
                expectingKey = true
            case UInt8(ascii: "["):
                containers.append(nil)
                expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = containers.popLast()
                expectingKey = false
            case UInt8(ascii: ","):
                expectingKey = containers.last.map { $0 != nil } ?? false
            case UInt8(ascii: ":"):
                expectingKey = false
            case UInt8(ascii: "\""):
                let end = endOfString(bytes, openingQuote: index)
                if expectingKey, var keys = containers.last ?? nil {
                    let key = unescaped(bytes[index...min(end, bytes.count - 1)])
                    guard keys.insert(key).inserted else { return key }
                    containers[containers.count - 1] = keys
                    expectingKey = false
                }
                index = end
            default:
                break
            }
            index += 1
        }
        return nil
    }

    /// The index of the quote closing the string that opens at `openingQuote`.
    private static func endOfString(_ bytes: [UInt8], openingQuote: Int) -> Int {
        var index = openingQuote + 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index
            default: index += 1
            }
        }
        return bytes.count
    }

    /// A string token's value, so that `"a"` and `"\u0061"` count as the same key.
    private static func unescaped(_ token: ArraySlice<UInt8>) -> String {
        if !token.contains(UInt8(ascii: "\\")) {
            return String(decoding: token.dropFirst().dropLast(), as: UTF8.self)
        }
        let value = try? JSONSerialization.jsonObject(with: Data(token), options: .fragmentsAllowed)
        return value as? String ?? String(decoding: token, as: UTF8.self)
    }
}
