import ChatProtocol
import ChatServer

extension ProtocolDocument {
    /// This project's document as shipped, strict: a field it does not declare is a problem.
    /// This server's own tests hold it to that.
    public static let strict = Result { try ProtocolDocument(APIDocuments.asyncAPI, rejectUndeclaredProperties: true) }
    /// The same, accepting fields it does not declare, as the protocol asks of clients.
    public static let lenient = Result { try ProtocolDocument(APIDocuments.asyncAPI) }
}
