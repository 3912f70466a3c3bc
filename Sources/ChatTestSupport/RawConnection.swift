import NIOCore
import NIOPosix

/// A plain TCP connection for tests that must write exactly the bytes they mean (hand-made
/// handshakes, silent clients) and read everything the server sends back.
public enum RawConnection {
    /// Writes `request`, then reads until the server closes the connection or `timeout` passes.
    /// - Returns: every byte received.
    public static func exchange(port: Int, request: [UInt8], timeout: Duration = .seconds(10)) async throws -> [UInt8] {
        let channel = try await connect(port: port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: request))
            return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
                group.addTask {
                    var received: [UInt8] = []
                    for try await buffer in inbound { received += buffer.readableBytesView }
                    return received
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let received = try await group.next() ?? nil else {
                    throw ChatWebSocketClient.Failure(
                        description: "the server kept the connection open past \(timeout)")
                }
                return received
            }
        }
    }

    /// Writes `request`, runs `body` without reading anything (so the socket fills up, as with
    /// a client that stopped reading), then reads until the server closes the connection.
    /// - Returns: what `body` returned, and whether the server closed the connection within
    ///   `timeout` after `body` finished.
    public static func silently<T: Sendable>(
        port: Int, request: [UInt8], timeout: Duration = .seconds(30), _ body: () async throws -> T
    ) async throws -> (result: T, closedByServer: Bool) {
        let channel = try await connect(port: port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: request))
            let result = try await body()
            let closed = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for try await _ in inbound {}
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return false
                }
                defer { group.cancelAll() }
                return try await group.next() ?? false
            }
            return (result, closed)
        }
    }

    /// A WebSocket handshake for `/ws` with extra header lines.
    public static func handshake(port: Int, headers: [String] = []) -> [UInt8] {
        let lines =
            [
                "GET /ws HTTP/1.1", "Host: 127.0.0.1:\(port)", "Connection: Upgrade", "Upgrade: websocket",
                "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            ] + headers
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    private static func connect(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }
}
