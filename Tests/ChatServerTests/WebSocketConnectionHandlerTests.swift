import ChatProtocol
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import ChatServer

/// RFC 6455 in the pipeline, on an embedded channel whose clock the tests move.
@Suite("WebSocket connection handler")
struct WebSocketConnectionHandlerTests {
    /// What the handler told its session.
    final class RecordingSession: WebSocketMessageHandler {
        var events: [String] = []

        func receivedText(_ text: String) { events.append("text \(text)") }
        func receivedBinary() { events.append("binary") }
        func closing() { events.append("closing") }
        func closed() { events.append("closed") }
    }

    struct Connection {
        let channel = EmbeddedChannel()
        let handler: WebSocketConnectionHandler
        let session = RecordingSession()

        init(attached: Bool = true, maxMessageBytes: Int = 16) throws {
            handler = WebSocketConnectionHandler(
                settings: .init(maxMessageBytes: maxMessageBytes, pingInterval: .seconds(30), closeTimeout: .seconds(5))
            )
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            if attached { handler.attach(session) }
        }

        /// Sends a client frame: masked, as clients must.
        func send(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, masked: Bool = true) throws {
            var data = channel.allocator.buffer(bytes: bytes)
            let key: WebSocketMaskingKey? = masked ? WebSocketMaskingKey([1, 2, 3, 4]) : nil
            if let key { data.webSocketMask(key) }
            try channel.writeInbound(WebSocketFrame(fin: fin, opcode: opcode, maskKey: key, data: data))
        }

        func send(text: String, fin: Bool = true) throws {
            try send(.text, Array(text.utf8), fin: fin)
        }

        /// The server frames written since the last call, as opcode and payload.
        func written() throws -> [(WebSocketOpcode, [UInt8])] {
            var frames: [(WebSocketOpcode, [UInt8])] = []
            while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
                frames.append((frame.opcode, Array(frame.data.readableBytesView)))
            }
            return frames
        }

        /// The close code the server sent last, if it sent a close frame.
        func closeCode() throws -> UInt16? {
            try written().last { $0.0 == .connectionClose }.map { UInt16($0.1[0]) << 8 | UInt16($0.1[1]) }
        }

        var isOpen: Bool { channel.isActive }
    }

    @Test func fragmentsAreJoinedIntoOneMessage() throws {
        let connection = try Connection()
        try connection.send(text: "hel", fin: false)
        try connection.send(.continuation, Array("lo".utf8))
        try connection.send(.binary, [1, 2])
        #expect(connection.session.events == ["text hello", "binary"])
    }

    @Test func messagesBeforeTheSessionAttachesWaitForIt() throws {
        let connection = try Connection(attached: false)
        try connection.send(text: "one")
        try connection.send(text: "two")
        connection.handler.attach(connection.session)
        try connection.send(text: "three")
        #expect(connection.session.events == ["text one", "text two", "text three"])
    }

    @Test(arguments: [
        ("a message over the limit in fragments", CloseCode.messageTooBig),
        ("invalid UTF-8", CloseCode.invalidText),
        ("an unmasked frame", CloseCode.protocolError),
        ("a continuation with nothing to continue", CloseCode.protocolError),
        ("a new message inside a fragmented one", CloseCode.protocolError),
    ])
    func badInputClosesWithItsCode(input: String, code: CloseCode) throws {
        let connection = try Connection()
        switch input {
        case "a message over the limit in fragments":
            try connection.send(text: String(repeating: "x", count: 10), fin: false)
            try connection.send(.continuation, Array(repeating: 0x78, count: 10))
        case "invalid UTF-8": try connection.send(.text, [0xC3, 0x28])
        case "an unmasked frame": try connection.send(.text, Array("{}".utf8), masked: false)
        case "a continuation with nothing to continue": try connection.send(.continuation, [0x78])
        default:
            try connection.send(text: "a", fin: false)
            try connection.send(text: "b")
        }
        #expect(try connection.closeCode() == code.rawValue, "\(input)")
        #expect(connection.session.events == ["closing"], "\(input): nothing was delivered")
        try connection.send(text: "after")
        #expect(connection.session.events == ["closing"], "frames after the close frame are ignored")
    }

    @Test func theServersCloseWaitsForTheClientsThenHangsUp() throws {
        let answered = try Connection()
        answered.handler.close(code: .sessionEnded, reason: "session ended")
        #expect(try answered.closeCode() == CloseCode.sessionEnded.rawValue)
        try answered.send(.connectionClose, [0x03, 0xE8])
        #expect(!answered.isOpen, "the client's close frame ends it at once")
        #expect(answered.session.events == ["closing", "closed"])

        let silent = try Connection()
        silent.handler.close(code: .slowConsumer, reason: "too slow")
        silent.channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(silent.isOpen)
        silent.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!silent.isOpen, "a client that does not answer is dropped after the close timeout")
    }

    @Test(arguments: [
        ([0x03, 0xE8] as [UInt8], CloseCode.normalClosure), ([], .normalClosure), ([0x0F, 0xA1], .normalClosure),
        ([0x03, 0xED], .protocolError), ([0x03], .protocolError), ([0x03, 0xE8, 0xC3, 0x28], .protocolError),
    ])
    func theClientsCloseIsAnsweredAndEndsTheConnection(payload: [UInt8], answer: CloseCode) throws {
        let connection = try Connection()
        try connection.send(.connectionClose, payload)
        #expect(try connection.closeCode() == answer.rawValue, "payload \(payload)")
        #expect(!connection.isOpen)
        #expect(connection.session.events == ["closing", "closed"])
    }

    @Test func aClientThatDoesNotAnswerAPingIsClosedWith1001() throws {
        let connection = try Connection()
        try connection.send(.ping, [9])
        #expect(try connection.written().map(\.0) == [.pong], "a ping is answered")
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        let ping = try #require(try connection.written().first)
        #expect(ping.0 == .ping)
        try connection.send(.pong, ping.1)
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        let second = try #require(try connection.written().first)
        #expect(second.0 == .ping && connection.isOpen, "an answered ping keeps the connection")
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(try connection.closeCode() == CloseCode.goingAway.rawValue)
        #expect(!connection.isOpen, "and it is dropped")
    }

    @Test func aServerShuttingDownClosesWith1001() throws {
        let connection = try Connection()
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(try connection.closeCode() == CloseCode.goingAway.rawValue)
        #expect(connection.session.events == ["closing"])
    }

    @Test func readingPausesWhileTheSessionIsBusy() throws {
        let connection = try Connection()
        let reads = ReadCounter()
        try connection.channel.pipeline.syncOperations.addHandler(reads, position: .first)
        connection.handler.pauseReading()
        connection.channel.read()
        #expect(reads.count == 0, "no read while paused")
        connection.handler.resumeReading()
        #expect(reads.count == 1, "the withheld read is made on resuming")
        connection.channel.read()
        #expect(reads.count == 2)
    }

    /// Counts the reads that reach the head of the pipeline.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Never
        var count = 0

        func read(context: ChannelHandlerContext) {
            count += 1
            context.read()
        }
    }
}
