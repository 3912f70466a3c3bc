import NIOCore
import NIOPosix

/// A plain TCP connection for checks and tests that must write exactly the bytes they mean
/// (hand-made handshakes, abusive frames, silent clients) and read everything the server sends
/// back.
public enum RawConnection {
    /// Writes `request` (if any), then reads until the server closes the connection, or until
    /// what it sent contains `answer` when one is given, or `timeout` passes.
    /// - Returns: every byte received.
    public static func exchange(
        host: String = "127.0.0.1", port: Int, request: [UInt8], until answer: String? = nil,
        timeout: Duration = Patience.wait
    ) async throws -> [UInt8] {
        let channel = try await connect(host: host, port: port)
        return try await channel.executeThenClose { inbound, outbound in
            if !request.isEmpty { try await outbound.write(ByteBuffer(bytes: request)) }
            let received = try await within(timeout) {
                var received: [UInt8] = []
                for try await buffer in inbound {
                    received += buffer.readableBytesView
                    if let answer, String(decoding: received, as: UTF8.self).contains(answer) { break }
                }
                return received
            }
            guard let received else {
                throw ChatWebSocketClient.Failure(description: "the server kept the connection open past \(timeout)")
            }
            return received
        }
    }

    /// Writes `first`, reads until the bytes received contain `answer`, then writes `second`
    /// and reads until the server closes the connection, within `timeout` in all.
    /// - Returns: every byte received after `second` was written.
    public static func exchangeInTwoSteps(
        port: Int, first: [UInt8], until answer: String, then second: [UInt8], timeout: Duration = Patience.wait
    ) async throws -> [UInt8] {
        let channel = try await connect(host: "127.0.0.1", port: port)
        return try await channel.executeThenClose { inbound, outbound in
            let received = try await within(timeout) {
                try await outbound.write(ByteBuffer(bytes: first))
                var received: [UInt8] = []
                var answered = false
                for try await buffer in inbound {
                    received += buffer.readableBytesView
                    if !answered, String(decoding: received, as: UTF8.self).contains(answer) {
                        answered = true
                        received = []
                        try await outbound.write(ByteBuffer(bytes: second))
                    }
                }
                return answered ? received : nil
            }
            guard let received else {
                throw ChatWebSocketClient.Failure(
                    description: "no \(answer) then a close within \(timeout), or the connection ended first")
            }
            return received
        }
    }

    /// Writes `request`, runs `body` without reading anything (so the socket fills up, as with
    /// a client that stopped reading), then reads until the server closes or resets the
    /// connection.
    /// - Returns: what `body` returned, and whether the server ended the connection within
    ///   `timeout` after `body` finished.
    public static func silently<T: Sendable>(
        port: Int, request: [UInt8], timeout: Duration = Patience.wait, _ body: () async throws -> T
    ) async throws -> (result: T, closedByServer: Bool) {
        let channel = try await connect(host: "127.0.0.1", port: port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: request))
            let result = try await body()
            let closed = try await within(timeout) {
                do {
                    for try await _ in inbound {}
                } catch let error as IOError where error.errnoCode == ECONNRESET {}
                return true
            }
            return (result, closed ?? false)
        }
    }

    /// What a server said before closing a WebSocket: the handshake response's head and the
    /// close frame's code and reason.
    public struct Closing: Sendable {
        public let responseHead: String
        public let code: UInt16
        public let reason: String
    }

    /// Sends a WebSocket handshake and reads until the server's close frame, skipping other
    /// frames. Parses the bytes itself, so what is checked is exactly what the server wrote.
    /// - Throws: when no close frame arrives within `timeout`.
    public static func closing(
        host: String = "127.0.0.1", port: Int, request: [UInt8], timeout: Duration = Patience.wait
    ) async throws -> Closing {
        let channel = try await connect(host: host, port: port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: request))
            let closing = try await within(timeout) {
                var received: [UInt8] = []
                for try await buffer in inbound {
                    received += buffer.readableBytesView
                    if let closing = parseClosing(received) { return closing }
                }
                return nil
            }
            guard let closing else {
                throw ChatWebSocketClient.Failure(description: "no close frame within \(timeout)")
            }
            return closing
        }
    }

    /// The response head and the first close frame in `bytes`, once both are complete.
    /// Server frames are unmasked; close frames carry at most 125 bytes.
    private static func parseClosing(_ bytes: [UInt8]) -> Closing? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let headEnd = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else { return nil }
        var index = headEnd + separator.count
        while index + 2 <= bytes.count {
            let opcode = bytes[index] & 0x0F
            let length = Int(bytes[index + 1] & 0x7F)
            let lengthBytes = length == 126 ? 2 : length == 127 ? 8 : 0
            let payloadStart = index + 2 + lengthBytes
            guard payloadStart <= bytes.count else { return nil }
            let payloadLength =
                lengthBytes == 0 ? length : bytes[(index + 2)..<payloadStart].reduce(0) { $0 << 8 | Int($1) }
            guard payloadStart + payloadLength <= bytes.count else { return nil }
            if opcode == 0x8, payloadLength >= 2 {
                let payload = bytes[payloadStart..<(payloadStart + payloadLength)]
                return Closing(
                    responseHead: String(decoding: bytes[..<headEnd], as: UTF8.self),
                    code: UInt16(payload[payloadStart]) << 8 | UInt16(payload[payloadStart + 1]),
                    reason: String(decoding: payload.dropFirst(2), as: UTF8.self))
            }
            index = payloadStart + payloadLength
        }
        return nil
    }

    /// What `work` returns, or nil when `timeout` passes first (`work` is then cancelled).
    private static func within<T: Sendable>(
        _ timeout: Duration, _ work: @escaping @Sendable () async throws -> T?
    ) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask(operation: work)
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    /// One WebSocket frame as a client would send it, or, through the parameters, as a
    /// broken client might: unmasked, with reserved bits set, or not final.
    public static func frame(
        opcode: UInt8, payload: [UInt8], fin: Bool = true, reservedBits: UInt8 = 0, masked: Bool = true
    ) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | (reservedBits & 0x07) << 4 | opcode & 0x0F]
        let maskBit: UInt8 = masked ? 0x80 : 0
        switch payload.count {
        case ..<126: bytes.append(maskBit | UInt8(payload.count))
        case ..<65_536: bytes += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default: bytes += [maskBit | 127] + (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        guard masked else { return bytes + payload }
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        return bytes + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    /// A WebSocket handshake for `/ws` with extra header lines.
    public static func handshake(
        host: String = "127.0.0.1", port: Int, query: String = "", headers: [String] = []
    )
        -> [UInt8]
    {
        let lines =
            [
                "GET /ws\(query) HTTP/1.1", "Host: \(host):\(port)", "Connection: Upgrade", "Upgrade: websocket",
                "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            ] + headers
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    /// Opens a connection and writes `request` (if any) for a test that decides when to read:
    /// it may outlive the server. Read it with `executeThenClose`, which also closes it.
    public static func open(port: Int, request: [UInt8] = []) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let channel = try await connect(host: "127.0.0.1", port: port)
        if !request.isEmpty { try await channel.channel.writeAndFlush(ByteBuffer(bytes: request)) }
        return channel
    }

    private static func connect(host: String, port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }
}
