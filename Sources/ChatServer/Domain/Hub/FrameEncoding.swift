import ChatProtocol
import Foundation
import NIOCore

/// Encodes server frames once, as the bytes every recipient's socket gets: the frame's JSON
/// inside a complete, unmasked WebSocket text frame (RFC 6455, section 5.2). A publication to
/// 50 members is encoded once and the same buffer is written 50 times; no WebSocket encoder
/// runs per recipient.
enum FrameEncoding {
    static func encode(_ frame: ServerFrame) -> ByteBuffer {
        // Encoding our own Codable types cannot fail; an empty frame would be a bug, not input.
        let json = (try? JSONEncoder().encode(frame)) ?? Data()
        var wire = ByteBuffer()
        wire.reserveCapacity(json.count + 10)
        wire.writeInteger(UInt8(0x81))  // FIN, text
        switch json.count {
        case ..<126:
            wire.writeInteger(UInt8(json.count))
        case ...Int(UInt16.max):
            wire.writeInteger(UInt8(126))
            wire.writeInteger(UInt16(json.count))
        default:
            wire.writeInteger(UInt8(127))
            wire.writeInteger(UInt64(json.count))
        }
        wire.writeBytes(json)
        return wire
    }

}
