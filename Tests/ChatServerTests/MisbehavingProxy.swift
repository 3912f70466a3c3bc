import ChatProtocol
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy in front of a chat server that breaks the protocol on purpose, as a faulty
/// implementation would: HTTP passes through untouched, and on WebSocket connections it
/// changes what the server sends according to its ``Fault``. The conformance suite run against
/// it must fail, naming the checks the fault breaks.
final class MisbehavingProxy: Sendable {
    enum Fault: String, CaseIterable, Sendable, CustomStringConvertible {
        /// On every connection, the first `message` frame comes after the second.
        case reordersMessages
        /// On every connection, the first `message` frame comes twice.
        case duplicatesMessages
        /// The first `ack` any connection gets is never sent.
        case skipsOneAck
        /// A connection told it was removed from a chat still gets the chat's messages.
        case leaksToRemovedMembers

        var description: String { rawValue }
    }

    private let fault: Fault
    private let upstreamPort: Int
    /// The connections that were removed from a chat, by chat, for `leaksToRemovedMembers`.
    private let removed = Mutex<[ChatID: [AsyncStream<ByteBuffer>.Continuation]]>([:])
    private let ackSkipped = Atomic<Bool>(false)

    private init(fault: Fault, upstreamPort: Int) {
        self.fault = fault
        self.upstreamPort = upstreamPort
    }

    /// Runs `body` with the port of a proxy in front of the server on `upstreamPort`.
    static func run<T: Sendable>(
        _ fault: Fault, before upstreamPort: Int, _ body: @Sendable (Int) async throws -> T
    ) async throws -> T {
        let proxy = MisbehavingProxy(fault: fault, upstreamPort: upstreamPort)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        guard let port = listener.channel.localAddress?.port else { throw ProxyError() }
        return try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                // It ends when `body` has returned and the listener is closed, after handing
                // over every client it accepted: an accepted client's NIOAsyncChannel that is
                // dropped unused stops the process ("Deinited NIOAsyncWriter without calling
                // finish()"), which a check's connection arriving as the test ends once did.
                try? await listener.executeThenClose { connections in
                    try await withThrowingDiscardingTaskGroup { connectionGroup in
                        for try await client in connections {
                            connectionGroup.addTask { try? await proxy.serve(client) }
                        }
                        connectionGroup.cancelAll()
                    }
                }
            }
            defer { listener.channel.close(promise: nil) }
            return try await body(port)
        }
    }

    /// Passes `client`'s bytes to a new connection to the server, and the server's back
    /// through ``Downstream``, until either side closes.
    private func serve(_ client: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async throws {
        // The client first, so that it is closed (and its writer finished) whatever happens next.
        try await client.executeThenClose { clientIn, clientOut in
            let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: upstreamPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            try await upstream.executeThenClose { upstreamIn, upstreamOut in
                let (output, sink) = AsyncStream.makeStream(of: ByteBuffer.self)
                try await withThrowingTaskGroup(of: Side.self) { group in
                    group.addTask {
                        for try await bytes in clientIn { try await upstreamOut.write(bytes) }
                        return .client
                    }
                    group.addTask {
                        var downstream = Downstream(proxy: self, sink: sink)
                        for try await bytes in upstreamIn { downstream.receive(bytes) }
                        sink.finish()
                        return .server
                    }
                    group.addTask {
                        for await bytes in output { try await clientOut.write(bytes) }
                        return .output
                    }
                    // Until the client leaves, or the server's last bytes reach the client.
                    while try await group.next() == .server {}
                    group.cancelAll()
                }
            }
        }
    }

    private enum Side {
        case client, server, output
    }

    private struct ProxyError: Error {}

    /// What the server sends one connection: HTTP passed through; after a `101` handshake,
    /// WebSocket frames read whole (server frames are unmasked) and passed on, changed by the
    /// fault.
    private struct Downstream {
        let proxy: MisbehavingProxy
        let sink: AsyncStream<ByteBuffer>.Continuation
        var pending = ByteBuffer()
        var upgraded: Bool?
        var userID: UserID?
        var held: ByteBuffer?
        var faultDone = false

        init(proxy: MisbehavingProxy, sink: AsyncStream<ByteBuffer>.Continuation) {
            self.proxy = proxy
            self.sink = sink
        }

        mutating func receive(_ bytes: ByteBuffer) {
            guard upgraded != false else { return forward(bytes) }
            pending.writeImmutableBuffer(bytes)
            if upgraded == nil {
                let text = String(buffer: pending)
                guard let headEnd = text.range(of: "\r\n\r\n") else { return }
                upgraded = text.hasPrefix("HTTP/1.1 101")
                let head = pending.readSlice(length: text.utf8.distance(from: text.startIndex, to: headEnd.upperBound))!
                forward(head)
                if upgraded == false {
                    forward(pending)
                    pending.clear()
                    return
                }
            }
            while let frame = nextFrame() { pass(frame) }
            pending.discardReadBytes()
        }

        /// The next whole frame in `pending`, header included, if it has arrived.
        mutating func nextFrame() -> (bytes: ByteBuffer, payload: ByteBuffer)? {
            let view = pending.readableBytesView
            guard view.count >= 2 else { return nil }
            let start = view.startIndex
            let shortLength = Int(view[start + 1] & 0x7F)
            let lengthBytes = shortLength == 126 ? 2 : shortLength == 127 ? 8 : 0
            let maskBytes = view[start + 1] & 0x80 != 0 ? 4 : 0
            let headerLength = 2 + lengthBytes + maskBytes
            guard view.count >= headerLength else { return nil }
            let length =
                lengthBytes == 0
                ? shortLength : view[(start + 2)..<(start + 2 + lengthBytes)].reduce(0) { $0 << 8 | Int($1) }
            guard view.count >= headerLength + length else { return nil }
            let bytes = pending.readSlice(length: headerLength + length)!
            return (bytes, bytes.getSlice(at: bytes.readerIndex + headerLength, length: length)!)
        }

        mutating func pass(_ frame: (bytes: ByteBuffer, payload: ByteBuffer)) {
            guard let decoded = try? JSONDecoder().decode(ServerFrame.self, from: Data(buffer: frame.payload)) else {
                return forward(frame.bytes)
            }
            if case .ready(let ready) = decoded { userID = ready.user.id }
            switch (proxy.fault, decoded) {
            case (.reordersMessages, .message) where !faultDone:
                guard let earlier = held else {
                    held = frame.bytes
                    return
                }
                faultDone = true
                forward(frame.bytes)
                forward(earlier)
            case (.duplicatesMessages, .message) where !faultDone:
                faultDone = true
                forward(frame.bytes)
                forward(frame.bytes)
            case (.skipsOneAck, .ack):
                if proxy.ackSkipped.exchange(true, ordering: .relaxed) { forward(frame.bytes) }
            case (.leaksToRemovedMembers, .memberRemoved(let chat, let user, _)) where user == userID:
                forward(frame.bytes)
                proxy.removed.withLock { $0[chat, default: []].append(sink) }
            case (.leaksToRemovedMembers, .message(let message)):
                forward(frame.bytes)
                for removed in proxy.removed.withLock({ $0[message.chatID] ?? [] }) { removed.yield(frame.bytes) }
            default:
                forward(frame.bytes)
            }
        }

        func forward(_ bytes: ByteBuffer) {
            sink.yield(bytes)
        }
    }
}
