import ChatProtocol
import ChatServer
import ChatTestSupport
import HTTPTypes
import Testing

/// `PATCH` and `DELETE /messages/{message_id}`: who may change a message, what it looks like
/// afterwards, and the errors of everyone else.
@Suite("Editing and deleting messages over REST")
struct MessageEditingAPITests {
    @Test func theSenderEditsAndTheMessageKeepsItsPlace() async throws {
        try await TestApp.run { api in
            let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
            let chat = try await api.createChat("Team", as: alice)
            _ = try await api.addUser(bob.id, to: chat.id, as: alice)
            let sent = try await api.storeMessages(2, in: chat.id, from: bob.id)
            let before = try await api.send(.get, "/history/\(chat.id)", as: alice).decode(
                [MessagePayload].self, expecting: .ok)
            let edited = try await api.editMessage(sent[0].id, text: "fixed", as: bob).decode(
                MessagePayload.self, expecting: .ok)
            #expect(
                edited.id == sent[0].id && edited.seq == 1 && edited.text == "fixed" && edited.editedAt != nil
                    && edited.updateSeq == 1 && !edited.deleted)
            #expect(edited.timestamp == before[0].timestamp, "the timestamp stays")
            let history = try await api.send(.get, "/history/\(chat.id)", as: alice).decode(
                [MessagePayload].self, expecting: .ok)
            #expect(history.map(\.text) == ["fixed", "message 2"] && history.map(\.editedAt).last == .some(nil))

            for (user, text, status, code) in [
                (alice, "hijack", HTTPResponse.Status.forbidden, "not_sender"),
                (bob, "   ", .unprocessableContent, "validation_failed"),
                (bob, String(repeating: "x", count: 4097), .unprocessableContent, "validation_failed"),
            ] {
                let refused = try await api.editMessage(sent[0].id, text: text, as: user)
                #expect(refused.status == status && refused.error?.code == code, "\(user.name): \(code)")
            }
            let outsider = try await api.user("carol")
            for (uri, status, code) in [
                ("/messages/\(sent[0].id)", HTTPResponse.Status.notFound, "message_not_found"),
                ("/messages/999999", .notFound, "message_not_found"),
                ("/messages/abc", .unprocessableContent, "validation_failed"),
            ] {
                let refused = try await api.send(.patch, uri, json: EditMessageRequest(text: "x"), as: outsider)
                #expect(refused.status == status && refused.error?.code == code, "\(uri)")
            }
            let malformed = try await api.sendRaw(
                .patch, "/messages/\(sent[0].id)", body: "{\"text\": 5}", contentType: "application/json", as: bob)
            #expect(malformed.status == .unprocessableContent && malformed.error?.code == "validation_failed")
            #expect(try await api.send(.patch, "/messages/\(sent[0].id)").status == .unauthorized)
        }
    }

    @Test func aDeletionLeavesATombstoneInItsPlace() async throws {
        try await TestApp.run { api in
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let group = try await api.createChat("Team", as: alice)
            _ = try await api.addUser(bob.id, to: group.id, as: alice)
            _ = try await api.addUser(carol.id, to: group.id, as: alice)
            let sent = try await api.storeMessages(3, in: group.id, from: bob.id)

            let refused = try await api.deleteMessage(sent[0].id, as: carol)
            #expect(refused.status == .forbidden && refused.error?.code == "not_sender", "another member may not")
            let own = try await api.deleteMessage(sent[0].id, as: bob).decode(MessagePayload.self, expecting: .ok)
            #expect(own.deleted && own.text == "" && own.id == sent[0].id && own.seq == 1 && own.updateSeq == 1)
            let again = try await api.deleteMessage(sent[0].id, as: bob).decode(MessagePayload.self, expecting: .ok)
            #expect(again == own, "deleting again changes nothing")
            let byCreator = try await api.deleteMessage(sent[1].id, as: alice).decode(
                MessagePayload.self, expecting: .ok)
            #expect(byCreator.deleted && byCreator.senderID == bob.id, "the group's creator deletes any message")

            let edit = try await api.editMessage(sent[0].id, text: "back", as: bob)
            #expect(edit.status == .conflict && edit.error?.code == "message_deleted")
            let page = try await api.send(.get, "/history/\(group.id)?offset=1&limit=1", as: carol).decode(
                [MessagePayload].self, expecting: .ok)
            #expect(page.map(\.seq) == [2] && page.first?.deleted == true, "offset paging counts tombstones")

            // In a private chat, being its creator gives no right to the other's messages.
            let pair = try await api.createChat("Pair", type: .private, as: alice)
            _ = try await api.addUser(bob.id, to: pair.id, as: alice)
            let bobs = try await api.storeMessages(1, in: pair.id, from: bob.id, prefix: "p")
            let privateRefused = try await api.deleteMessage(bobs[0].id, as: alice)
            #expect(privateRefused.status == .forbidden && privateRefused.error?.code == "not_sender")
            let hidden = try await api.deleteMessage(bobs[0].id, as: carol)
            #expect(hidden.status == .notFound && hidden.error?.code == "message_not_found")
        }
    }
}
