import ChatProtocol
import ChatServer
import Foundation
import Testing

@Suite("Read markers")
struct ReadMarkersTests {
    func message(seq: Int64, from sender: UserID) -> Message {
        Message(id: MessageID(seq), chatID: 1, seq: seq, senderID: sender, clientID: nil, text: "", createdAt: Date())
    }

    func member(_ id: UserID, read: Int64) -> ChatMember {
        ChatMember(userID: id, name: "u\(id)", readSeq: read)
    }

    @Test func aPrivateMessageIsReadWhenTheOtherMemberHasReadIt() {
        let markers = ReadMarkers([member(1, read: 5), member(2, read: 3)])
        #expect(markers.isRead(message(seq: 3, from: 1)))
        #expect(!markers.isRead(message(seq: 4, from: 1)))
        // The sender's own marker does not count.
        #expect(markers.isRead(message(seq: 5, from: 2)))
        #expect(!markers.isRead(message(seq: 6, from: 2)))
    }

    @Test func aGroupMessageIsReadWhenEveryoneButTheSenderHasReadIt() {
        let markers = ReadMarkers([member(1, read: 10), member(2, read: 7), member(3, read: 9)])
        #expect(markers.isRead(message(seq: 7, from: 1)))
        #expect(!markers.isRead(message(seq: 8, from: 1)))
        // Sender 2 holds the lowest marker, so the second lowest decides.
        #expect(markers.isRead(message(seq: 9, from: 2)))
        #expect(!markers.isRead(message(seq: 10, from: 2)))
    }

    @Test func aMessageNobodyElseCanReadIsUnread() {
        #expect(!ReadMarkers([member(1, read: 9)]).isRead(message(seq: 1, from: 1)))
        #expect(!ReadMarkers([]).isRead(message(seq: 1, from: 1)))
    }

    @Test func aRemovedSendersMessagesNeedEveryCurrentMember() {
        let markers = ReadMarkers([member(1, read: 4), member(2, read: 6)])
        #expect(markers.isRead(message(seq: 4, from: 9)))
        #expect(!markers.isRead(message(seq: 5, from: 9)))
    }
}
