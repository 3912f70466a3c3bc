import ChatProtocol
import ChatServer
import ChatTestSupport
import Testing

/// Sends into one chat at once share transactions (see `MessageAppender`): each must still
/// get its own answer, in a gap-free order, with duplicates resolved per client id.
@Suite("Batched sends")
struct BatchedSendTests {
    @Test func concurrentSendsWithRepeatedClientIDsAndAnOutsider() async throws {
        try await TestDatabase.sqlite.withStore { store in
            // A wait bound no busy test machine reaches: this test is about answers, not admission.
            let chats = ChatService(
                store: store, rules: InputRules(), sendLimits: .init(maxWait: .seconds(600), maxQueued: 10_000))
            let alice = try await store.createUser(NewUser(name: "alice", email: "a@example.com", passwordHash: "h"))
            let bob = try await store.createUser(NewUser(name: "bob", email: "b@example.com", passwordHash: "h"))
            let eve = try await store.createUser(NewUser(name: "eve", email: "e@example.com", passwordHash: "h"))
            let chat = try await store.createChat(name: "busy", type: .group, creator: alice.id)
            try await store.addMember(bob.id, to: chat.id)

            enum Outcome: Sendable {
                case stored(sender: UserID, clientID: String, AppendedMessage)
                case refused(any Error)
            }
            // Every client id is sent twice by its sender (two devices racing), and eve, who
            // is not a member, sends among them.
            let sends = (0..<40).flatMap { index in
                [
                    (alice.id, "c\(index)"), (alice.id, "c\(index)"), (bob.id, "c\(index)"), (bob.id, "c\(index)"),
                    (eve.id, "e\(index)"),
                ]
            }
            let outcomes = await withTaskGroup(of: Outcome.self) { group in
                for (sender, clientID) in sends {
                    group.addTask {
                        do {
                            let appended = try await chats.send(
                                to: chat.id, from: sender, clientID: clientID, text: "m")
                            return .stored(sender: sender, clientID: clientID, appended)
                        } catch {
                            return .refused(error)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }

            var stored: [String: [AppendedMessage]] = [:]
            var refusals: [any Error] = []
            for outcome in outcomes {
                switch outcome {
                case .stored(let sender, let clientID, let appended):
                    stored["\(sender)/\(clientID)", default: []].append(appended)
                case .refused(let error): refusals.append(error)
                }
            }
            #expect(refusals.count == 40)
            #expect(refusals.allSatisfy { ($0 as? ChatError) == .notAMember })
            #expect(stored.count == 80)
            for (key, answers) in stored {
                #expect(answers.count == 2, "\(key)")
                #expect(Set(answers.map(\.message.id)).count == 1, "\(key): both devices get the same message")
                #expect(answers.filter { !$0.duplicate }.count == 1, "\(key): stored once")
            }
            let history = try await store.messages(in: chat.id, .offset(0, limit: 1000))
            #expect(history.map(\.seq) == Array(1...80))
        }
    }
}
