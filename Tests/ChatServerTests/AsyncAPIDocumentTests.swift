import ChatConformance
import ChatProtocol
import ChatServer
import ChatTestSupport
import Foundation
import Testing

/// `asyncapi/asyncapi.json`, served at `/asyncapi.json`: it lists every frame and code the code
/// has, its examples follow its schemas, and real frames follow it. Every frame a test's
/// `ChatWebSocketClient` receives is checked against it (strictly: a field the document lacks
/// fails); the last test makes the server send each kind of frame.
@Suite("AsyncAPI document")
struct AsyncAPIDocumentTests {
    let document: ProtocolDocument

    init() throws {
        document = try ProtocolDocument(APIDocuments.asyncAPI, rejectUndeclaredProperties: true)
    }

    @Test func listsEveryFrameAndCodeOfTheCode() {
        #expect(document.document["asyncapi"]?.string == "3.0.0")
        #expect(document.document["info"]?["version"]?.string == ProjectVersion.current)
        #expect(Set(document.frames[.client, default: [:]].keys) == Set(ClientFrame.Kind.allCases.map(\.rawValue)))
        #expect(Set(document.frames[.server, default: [:]].keys) == Set(ServerFrame.Kind.allCases.map(\.rawValue)))
        let errorCodes = document.document["components"]?["schemas"]?["ErrorCode"]?["enum"]?.array?.compactMap(\.string)
        #expect(Set(errorCodes ?? []) == Set(ErrorCode.allCases.filter(\.isInErrorFrames).map(\.rawValue)))
        #expect(Set(document.closeCodes.keys) == Set(CloseCode.allCases.map(\.rawValue)))
        for code in CloseCode.allCases {
            #expect(document.closeCodes[code.rawValue]?["meaning"]?.string == code.meaning, "\(code.rawValue)")
            #expect(document.closeCodes[code.rawValue]?["remedy"]?.string == code.remedy, "\(code.rawValue)")
        }
    }

    @Test func examplesFollowTheirSchemas() throws {
        for (sender, frames) in document.frames {
            for (type, schema) in frames {
                let examples = try #require(schema["examples"]?.array, "\(sender) \(type) has examples")
                for example in examples {
                    #expect(example["type"]?.string == type)
                    #expect(document.problems(of: example, from: sender) == [], "\(sender) \(type)")
                }
            }
        }
    }

    @Test func framesThatDoNotFollowItAreNamed() {
        let message =
            #""id": 1, "chat_id": 2, "seq": 3, "sender_id": 4, "text": "hi","#
            + #" "timestamp": "2026-11-25T15:02:11.482Z", "is_read": false, "reply_to": null,"#
            + #" "edited_at": null, "deleted": false, "update_seq": 0"#
        for (frame, problem) in [
            (#"{"type": "message", "message": {\#(message)}}"#, nil),
            (#"{"type": "message", "message": {\#(message), "mood": "happy"}}"#, "message: $.message.mood is not in"),
            (#"{"type": "message", "message": {"id": 1}}"#, "message: $.message: chat_id is missing"),
            (#"{"type": "read", "chat_id": 1, "user_id": 2, "seq": "3"}"#, "read: $.seq: expected integer"),
            (#"{"type": "read", "chat_id": 1, "user_id": 2, "seq": -1}"#, "read: $.seq: -1 is below the minimum 0"),
            (#"{"type": "error", "code": "oops", "message": "?"}"#, "error: $.code: \"oops\" is not one of"),
            (#"{"type": "presence", "user_id": 1, "online": 1}"#, "presence: $.online: expected boolean"),
            (#"{"type": "shout"}"#, "the document has no server frame shout"),
            (#"{"chat_id": 1}"#, "the frame has no type"),
            ("not json", "the frame is not JSON"),
        ] {
            let problems = document.problems(of: Data(frame.utf8), from: .server)
            if let problem {
                #expect(problems.contains { $0.hasPrefix(problem) }, "\(frame): \(problems)")
            } else {
                #expect(problems == [], "\(frame)")
            }
        }
        let lenient = try? ProtocolDocument(APIDocuments.asyncAPI)
        let addition = #"{"type": "presence", "user_id": 1, "online": true, "since": "now"}"#
        #expect(lenient?.problems(of: Data(addition.utf8), from: .server) == [], "a client accepts new fields")
        let send = #"{"type": "send", "chat_id": 1, "client_id": "with space", "text": ""}"#
        #expect(
            document.problems(of: Data(send.utf8), from: .client).sorted() == [
                "send: $.client_id: does not match ^[\\x21-\\x7E]+$", "send: $.text: shorter than 1 characters",
            ])
    }

    @Test func isServedAndLinkedFromTheReferencePage() async throws {
        try await TestApp.run { api in
            let served = try await api.send(.get, "/asyncapi.json")
            #expect(served.status == .ok && served.headers[.contentType] == "application/json; charset=utf-8")
            #expect(Data(buffer: served.body) == APIDocuments.asyncAPI)
            let page = try await api.send(.get, "/docs")
            #expect(String(buffer: page.body).contains(#"href="/asyncapi.json""#))
        }
    }

    /// Every kind of server frame, from a real server over real connections; the client checks
    /// each frame against the document as it arrives.
    @Test func theServerSendsEveryKindOfFrameAsDocumented() async throws {
        try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let (alice, bob, carol) = (
                try await api.user("alice"), try await api.user("bob"), try await api.user("carol")
            )
            let chat = try await api.createChat("Team", as: alice)
            _ = try await api.addUser(bob.id, to: chat.id, as: alice)
            var seen: Set<ServerFrame.Kind> = []
            let aliceSocket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            seen.insert(.ready)
            let bobSocket = try await ChatWebSocketClient.connect(port: port, token: bob.token)
            seen.insert(try await aliceSocket.next(.presence).kind)

            aliceSocket.send(.send(chatID: chat.id, clientID: "a1", text: "hello"))
            seen.insert(try await aliceSocket.next(.ack).kind)
            guard case .message(let message) = try await bobSocket.next(.message) else { return }
            seen.insert(.message)
            bobSocket.send(.send(chatID: chat.id, clientID: "b1", text: "hi!", replyTo: message.id))
            _ = try await bobSocket.next(.ack)
            bobSocket.send(.typing(chatID: chat.id))
            seen.insert(try await aliceSocket.next(.typing).kind)
            aliceSocket.send(.read(chatID: chat.id, seq: 2))
            seen.insert(try await bobSocket.next(.read).kind)
            #expect(try await api.editMessage(message.id, text: "hello, all", as: alice).status == .ok)
            seen.insert(try await bobSocket.next(.messageUpdated).kind)
            bobSocket.send(.resume(chatID: chat.id, afterSeq: 0, afterUpdate: 0))
            seen.insert(try await bobSocket.next(.resumed).kind)
            bobSocket.send(.send(chatID: ChatID(999_999), clientID: "b2", text: "anyone?"))
            seen.insert(try await bobSocket.next(.error).kind)

            let carolSocket = try await ChatWebSocketClient.connect(port: port, token: carol.token)
            _ = try await api.addUser(carol.id, to: chat.id, as: alice)
            guard case .memberAdded(_, _, let added?) = try await carolSocket.next(.memberAdded) else {
                Issue.record("carol's connection gets the chat with member_added")
                return
            }
            #expect(added.id == chat.id)
            seen.insert(try await aliceSocket.next(.memberAdded).kind)
            #expect(try await api.leave(chat.id, as: alice).status == .ok)
            guard case .memberRemoved(_, alice.id, bob.id?) = try await bobSocket.next(.memberRemoved) else {
                Issue.record("bob hears that alice left and that he created the chat now")
                return
            }
            seen.insert(.memberRemoved)
            #expect(seen == Set(ServerFrame.Kind.allCases))
            for socket in [aliceSocket, bobSocket, carolSocket] { await socket.close() }
        }
    }
}
