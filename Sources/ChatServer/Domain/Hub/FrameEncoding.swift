import ChatProtocol
import Foundation
import NIOCore

/// Encodes server frames once, as the bytes every recipient's socket gets.
enum FrameEncoding {
    static func encode(_ frame: ServerFrame) -> ByteBuffer {
        // Encoding our own Codable types cannot fail; an empty frame would be a bug, not input.
        ByteBuffer(bytes: (try? JSONEncoder().encode(frame)) ?? Data())
    }
}
