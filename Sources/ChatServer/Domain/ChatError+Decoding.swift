extension ChatError {
    /// The field-level problem a decoding failure of client input describes, or nil when the
    /// input is not well-formed JSON at all.
    init?(decoding error: DecodingError) {
        func field(_ path: [any CodingKey]) -> String {
            path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            self = .invalidField(field(context.codingPath + [key]), "is required")
        case .valueNotFound(_, let context):
            self = .invalidField(field(context.codingPath), "must not be null")
        case .typeMismatch(let type, let context):
            self = .invalidField(field(context.codingPath), "must be \(Self.jsonTypeName(type))")
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            // Raised by the wire types' own decoders (e.g. ChatType: "must be PRIVATE or GROUP").
            self = .invalidField(field(context.codingPath), context.debugDescription)
        default:
            return nil
        }
    }

    private static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is any BinaryInteger.Type, is any BinaryFloatingPoint.Type: "a number"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}
