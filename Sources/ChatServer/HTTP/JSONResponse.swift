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
        let data = try encoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// For the large bodies (history pages, search results): written in place by
    /// ``JSONWriter`` rather than through `JSONEncoder`, in field order rather than sorted.
    static func make(writing value: some JSONWritable, status: HTTPResponse.Status = .ok) -> Response {
        var writer = JSONWriter()
        value.write(to: &writer)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }
}
