/// A database failure that is not the caller's doing: a bug or corrupt data. Reaches clients
/// only as a generic 500; the description (which may hold SQL) goes to the server log.
public enum StorageError: Error, CustomStringConvertible {
    /// The driver reported an error the store does not expect.
    case unexpected(String)
    /// A row held a value the schema does not allow.
    case corruptRow(String)
    /// The database cannot be reached; the reason is for operators, not clients.
    case unreachable(String)

    public var description: String {
        switch self {
        case .unexpected(let details): "unexpected database error: \(details)"
        case .corruptRow(let details): "corrupt row: \(details)"
        case .unreachable(let reason): "cannot reach the database: \(reason)"
        }
    }
}
