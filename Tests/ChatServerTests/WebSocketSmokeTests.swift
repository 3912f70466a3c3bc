import ChatProtocol
import ChatServer
import ChatTestSupport
import HummingbirdTesting
import Testing

@Suite("WebSocket smoke")
struct WebSocketSmokeTests {
    @Test func aMessageReachesTheOtherMember() async throws {
        try await TestApp.run(testing: .live) { api in
            let port = try #require(api.client.port)
            let (alice, bob) = (try await api.user("alice"), try await api.user("bob"))
            let chat = try await api.createChat("Pair", type: .private, as: alice)
            _ = try await api.addUser(bob.id, to: chat.id, as: alice)
            let aliceSocket = try await ChatWebSocketClient.connect(port: port, token: alice.token)
            let bobSocket = try await ChatWebSocketClient.connect(port: port, token: bob.token)
            #expect(aliceSocket.ready.chats.map(\.id) == [chat.id])
            aliceSocket.send(.send(chatID: chat.id, clientID: "c1", text: "hello"))
            guard case .ack(let clientID, let message, let duplicate) = try await aliceSocket.next(.ack) else {
                Issue.record("no ack")
                return
            }
            #expect(clientID == "c1" && !duplicate && message.seq == 1)
            guard case .message(let received) = try await bobSocket.next(.message) else {
                Issue.record("no message")
                return
            }
            #expect(received == message)
            await aliceSocket.close()
            await bobSocket.close()
        }
    }
}
