import Foundation

/// The WebSocket protocol's AsyncAPI document (`asyncapi/asyncapi.json`, served at
/// `/asyncapi.json`): the frames each side sends, with their schemas, and the close codes.
/// Checks frames against it.
public struct ProtocolDocument: Sendable {
    /// Which side sends a frame.
    public enum Sender: String, Sendable {
        case client, server
    }

    public let document: JSONValue
    /// Schemas of the frames by sender and `type`.
    public let frames: [Sender: [String: JSONValue]]
    private let checker: JSONSchemaChecker

    /// Reads the document. `rejectUndeclaredProperties`: a field the document does not declare
    /// is a problem (see ``JSONSchemaChecker``).
    public init(_ data: Data, rejectUndeclaredProperties: Bool = false) throws {
        document = try JSONValue.parse(data)
        let checker = JSONSchemaChecker(document: document, rejectUndeclaredProperties: rejectUndeclaredProperties)
        self.checker = checker
        var frames: [Sender: [String: JSONValue]] = [.client: [:], .server: [:]]
        for (key, message) in document["components"]?["messages"]?.object ?? [:] {
            // A payload is a schema or a `$ref` to one.
            guard let name = message["name"]?.string,
                let payload = message["payload"].flatMap({ $0["$ref"]?.string.map(checker.resolve) ?? $0 }),
                let sender = Sender(rawValue: String(key.prefix { $0 != "_" }))
            else { throw ProtocolDocumentError("components.messages.\(key) needs a name, a payload and a side") }
            frames[sender]?[name] = payload
        }
        self.frames = frames
    }

    /// The close codes the document lists, by number.
    public var closeCodes: [UInt16: JSONValue] {
        var codes: [UInt16: JSONValue] = [:]
        for (number, meaning) in document["x-close-codes"]?["codes"]?.object ?? [:] {
            if let code = UInt16(number) { codes[code] = meaning }
        }
        return codes
    }

    /// What is wrong with a frame `sender` sent, as text; empty when it follows the document.
    public func problems(of frame: Data, from sender: Sender) -> [String] {
        let value: JSONValue
        do { value = try JSONValue.parse(frame) } catch { return ["the frame is not JSON"] }
        return problems(of: value, from: sender)
    }

    public func problems(of frame: JSONValue, from sender: Sender) -> [String] {
        guard let type = frame["type"]?.string else { return ["the frame has no type"] }
        guard let schema = frames[sender]?[type] else { return ["the document has no \(sender) frame \(type)"] }
        return checker.problems(of: frame, against: schema).map { "\(type): \($0)" }
    }
}

/// A protocol document that does not have the shape this project writes.
public struct ProtocolDocumentError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
