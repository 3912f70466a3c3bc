/// The two kinds of chat the original service offered.
public enum ChatType: String, Codable, Sendable, CaseIterable {
    /// A conversation between at most two people.
    case `private` = "PRIVATE"
    /// A conversation with any number of members.
    case group = "GROUP"

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let value = try container.decode(String.self)
        guard let type = ChatType(rawValue: value) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "must be PRIVATE or GROUP")
        }
        self = type
    }
}
