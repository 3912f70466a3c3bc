import ChatProtocol
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import ChatServer

@Suite("WebSocket building blocks")
struct WebSocketPartsTests {
    @Test func theTokenBucketAllowsABurstThenTheRate() {
        let start = Duration.seconds(7)
        var bucket = TokenBucket(rate: 2, burst: 3, now: start)
        var waits: [Duration?] = []
        for _ in 0..<4 { waits.append(bucket.take(at: start)) }
        #expect(waits == [nil, nil, nil, .milliseconds(500)], "then a token every half second")
        let afterFourTenths = bucket.take(at: start + .milliseconds(400))
        #expect(afterFourTenths == .milliseconds(100), "0.8 tokens refilled: 0.2 to go")
        let afterHalf = bucket.take(at: start + .milliseconds(500))
        #expect(afterHalf == nil, "one token after half a second")
        waits = []
        for _ in 0..<4 { waits.append(bucket.take(at: start + .seconds(10))) }
        #expect(waits == [nil, nil, nil, .milliseconds(500)], "never above the burst")
    }

    @Test func theOutboxWaitsForAFullSocketAndClosesAtItsLimit() async throws {
        let outbox = Outbox.recording(frames: 3, bytes: 1 << 20)
        try await outbox.recorder.setWritable(false, outbox: outbox)
        #expect(outbox.offer(ByteBuffer(string: "a")) && outbox.offer(ByteBuffer(string: "b")))
        try await outbox.recorder.setWritable(true, outbox: outbox)
        guard case .frames(let batch) = await outbox.nextBatch() else {
            Issue.record("no batch")
            return
        }
        #expect(batch.map { String(buffer: $0) } == ["a", "b"], "what waited goes out in one flush")
        try await outbox.recorder.setWritable(false, outbox: outbox)
        #expect(outbox.offer(ByteBuffer(string: "c")) && outbox.offer(ByteBuffer(string: "d")))
        #expect(outbox.offer(ByteBuffer(string: "e")))
        #expect(!outbox.offer(ByteBuffer(string: "f")), "the fourth waiting frame overflows")
        guard case .closed(.slowConsumer) = await outbox.nextBatch() else {
            Issue.record("an overflowing outbox must close")
            return
        }
        #expect(!outbox.offer(ByteBuffer(string: "g")))
    }

    @Test func theOutboxClosesWhenTooManyBytesWait() async throws {
        let outbox = Outbox.recording(frames: 100, bytes: 10)
        try await outbox.recorder.setWritable(false, outbox: outbox)
        #expect(outbox.offer(ByteBuffer(string: "12345")) && outbox.offer(ByteBuffer(string: "67890")))
        #expect(!outbox.offer(ByteBuffer(string: "x")), "the eleventh byte overflows")
        #expect(outbox.closeReason == .slowConsumer)
    }

    @Test func oneJobPerLoopDrainsEveryOutboxThatAskedAndFlushesEachOnce() async throws {
        let loop = DeliveryLoop(eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        let sinks = [RecordingSink(eventLoop: loop.eventLoop), RecordingSink(eventLoop: loop.eventLoop)]
        let outboxes = sinks.map { Outbox(limits: .init(frames: 10, bytes: 1000), sink: $0, delivery: loop) }
        for (outbox, sink) in zip(outboxes, sinks) { outbox.onForcedClose { _ in sink.wake() } }
        // Offered within one job of the loop: the drain they ask for runs after it.
        try await loop.eventLoop.submit {
            for frame in ["a", "b", "c"] {
                for outbox in outboxes { outbox.offer(ByteBuffer(string: frame)) }
            }
        }.get()
        for outbox in outboxes {
            guard case .frames(let batch) = await outbox.nextBatch() else {
                Issue.record("no batch")
                return
            }
            #expect(batch.map { String(buffer: $0) } == ["a", "b", "c"])
        }
    }

    @Test(
        arguments: [
            (
                #"{"type":"send","chat_id":3,"client_id":"c","text":"hi"}"#,
                ClientFrame.send(chatID: 3, clientID: "c", text: "hi")
            ),
            (#"{"type":"read","chat_id":3,"seq":7}"#, .read(chatID: 3, seq: 7)),
            (#"{"type":"typing","chat_id":3}"#, .typing(chatID: 3)),
            (#"{"type":"resume","chat_id":3,"after_seq":0}"#, .resume(chatID: 3, afterSeq: 0)),
        ])
    func clientFramesParse(_ text: String, _ expected: ClientFrame) throws {
        #expect(try ClientFrame.parse(text).get() == expected)
        let reencoded = try JSONEncoder().encode(expected)
        #expect(try ClientFrame.parse(String(decoding: reencoded, as: UTF8.self)).get() == expected)
    }

    @Test func serverFramesRoundTrip() throws {
        let message = MessagePayload(
            id: 1, chatID: 2, seq: 3, senderID: 4, clientID: "c", text: "hi", timestamp: Date(timeIntervalSince1970: 1),
            isRead: false)
        let frames: [ServerFrame] = [
            .ready(ReadyPayload(user: UserPayload(id: 1, name: "a"), chats: [], resumeLimit: 1000, generation: "g")),
            .ack(clientID: "c", message: message, duplicate: true), .message(message),
            .read(chatID: 2, userID: 4, seq: 3), .typing(chatID: 2, userID: 4), .presence(userID: 4, online: true),
            .memberAdded(chatID: 2, userID: 4, chat: nil), .memberRemoved(chatID: 2, userID: 4),
            .error(code: "x", message: "y", ref: nil),
        ]
        for frame in frames {
            #expect(try JSONDecoder().decode(ServerFrame.self, from: JSONEncoder().encode(frame)) == frame)
        }
    }

    @Test func aReadyWithoutAGenerationFromAnOlderServerDecodes() throws {
        let ready = #"{"type":"ready","user":{"id":1,"name":"a"},"chats":[],"resume_limit":1000}"#
        let frame = try JSONDecoder().decode(ServerFrame.self, from: Data(ready.utf8))
        #expect(
            frame
                == .ready(
                    ReadyPayload(user: UserPayload(id: 1, name: "a"), chats: [], resumeLimit: 1000, generation: "")))
    }

    @Test(
        "frames are encoded once as complete WebSocket text frames, with the length in 7, 16 or 64 bits",
        arguments: [(10, 2), (1000, 4), (70_000, 10)])
    func framesAreEncodedAsWebSocketTextFrames(textLength: Int, headerLength: Int) throws {
        let frame = ServerFrame.error(code: "x", message: String(repeating: "a", count: textLength), ref: nil)
        let wire = FrameEncoding.encode(frame)
        let json = FrameEncoding.json(of: wire)
        #expect(wire.readableBytes == headerLength + json.readableBytes)
        #expect(wire.getInteger(at: wire.readerIndex, as: UInt8.self) == 0x81, "FIN and the text opcode")
        let length: Int? =
            switch headerLength {
            case 2: wire.getInteger(at: wire.readerIndex + 1, as: UInt8.self).map(Int.init)
            case 4: wire.getInteger(at: wire.readerIndex + 2, as: UInt16.self).map(Int.init)
            default: wire.getInteger(at: wire.readerIndex + 2, as: UInt64.self).map(Int.init)
            }
        #expect(length == json.readableBytes, "unmasked, with the payload's length")
        #expect(try JSONDecoder().decode(ServerFrame.self, from: Data(json.readableBytesView)) == frame)
    }
}
