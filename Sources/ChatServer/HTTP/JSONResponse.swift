import ChatProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Builds JSON responses from the wire types in ChatProtocol, which stay free of any
/// Hummingbird conformance.
enum JSONResponse {
    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return response(ByteBuffer(bytes: try encoder.encode(value)), status: status)
    }

    /// For the large bodies (history pages, search results): written in place by
    /// ``JSONWriter`` rather than through `JSONEncoder`, in field order rather than sorted.
    static func make(writing value: some JSONWritable, status: HTTPResponse.Status = .ok) -> Response {
        var writer = JSONWriter()
        value.write(to: &writer)
        return response(ByteBuffer(bytes: writer.bytes), status: status)
    }

    private static func response(_ body: ByteBuffer, status: HTTPResponse.Status) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: body))
    }
}
