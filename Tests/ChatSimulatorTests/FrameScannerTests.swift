import ChatProtocol
import Foundation
import Testing

@testable import ChatSimulator

/// The scanner reads frames as the server encodes them: these are encoded with the same
/// `ServerFrame` the server uses.
@Suite struct FrameScannerTests {
    func encoded(_ frame: ServerFrame) throws -> String {
        String(decoding: try JSONEncoder().encode(frame), as: UTF8.self)
    }

    func message(id: Int64, seq: Int64, clientID: String?, text: String) -> MessagePayload {
        MessagePayload(
            id: MessageID(id), chatID: ChatID(7), seq: seq, senderID: UserID(3), clientID: clientID, text: text,
            timestamp: Date(timeIntervalSince1970: 1_700_000_000), isRead: false)
    }

    @Test func readsAMessage() throws {
        let clientID = ClientID(run: 12, sender: 3, number: 45, sentAt: 6_789_000)
        let frame = FrameScanner.scan(
            try encoded(.message(message(id: 57, seq: 4, clientID: clientID.text, text: "hello"))))
        #expect(frame.kind == .message)
        #expect(frame.chatID == 7 && frame.seq == 4 && frame.messageID == 57)
        #expect(frame.clientID == clientID)
        #expect(!frame.duplicate)
    }

    @Test func readsAnAck() throws {
        let clientID = ClientID(run: 12, sender: 3, number: 46, sentAt: 1)
        let fresh = FrameScanner.scan(
            try encoded(
                .ack(
                    clientID: clientID.text, message: message(id: 58, seq: 5, clientID: clientID.text, text: "x"),
                    duplicate: false)))
        #expect(fresh.kind == .ack && fresh.seq == 5 && fresh.messageID == 58 && fresh.clientID == clientID)
        #expect(!fresh.duplicate)
        let repeated = FrameScanner.scan(
            try encoded(
                .ack(
                    clientID: clientID.text, message: message(id: 58, seq: 5, clientID: clientID.text, text: "x"),
                    duplicate: true)))
        #expect(repeated.duplicate)
    }

    @Test func readsAnUpdate() throws {
        var edited = message(id: 59, seq: 6, clientID: nil, text: #"now with "update_seq":1"#)
        edited.updateSeq = 12
        let frame = FrameScanner.scan(try encoded(.messageUpdated(edited)))
        #expect(frame.kind == .messageUpdated && frame.chatID == 7 && frame.seq == 6 && frame.messageID == 59)
        #expect(frame.updateSeq == 12)
        #expect(
            FrameScanner.scan(try encoded(.message(message(id: 1, seq: 1, clientID: nil, text: "")))).updateSeq == 0)
    }

    @Test func keysInsideTextDoNotFoolIt() throws {
        let text = #"{"type":"error","seq":999,"id":1,"chat_id":2,"duplicate":true}"#
        let frame = FrameScanner.scan(try encoded(.message(message(id: 60, seq: 8, clientID: nil, text: text))))
        #expect(frame.kind == .message && frame.seq == 8 && frame.messageID == 60 && frame.chatID == 7)
        #expect(frame.clientID == nil)
    }

    @Test func tellsTheOtherKinds() throws {
        #expect(
            FrameScanner.scan(try encoded(.error(code: "rate_limited", message: "slow down", ref: "1.2.3.4"))).kind
                == .error)
        #expect(FrameScanner.scan(#"{"type":"ready","user":{},"chats":[]}"#).kind == .ready)
        #expect(FrameScanner.scan(#"{"type":"typing","chat_id":1,"user_id":3}"#).kind == .other)
        #expect(FrameScanner.scan("not json").kind == .other)
    }

    @Test func clientIDsRoundTripAndOthersAreRefused() {
        let clientID = ClientID(run: UInt32.max, sender: 0, number: 123_456, sentAt: UInt64(Int64.max))
        #expect(ClientID(clientID.text) == clientID)
        for text in ["", "5f0c-0001", "1.2.3", "1.2.3.4.5", "1..2.3", "a.b.c.d", "1.2.3.", "99999999999.1.2.3"] {
            #expect(ClientID(text) == nil, "\(text)")
        }
    }
}
