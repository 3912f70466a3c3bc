import ChatProtocol
import Logging

/// Loads the original service's demo data: users Sergey, Arina and Vlad (password 12345), a
/// group chat with all three and a private chat, each with a few messages. Running it again
/// changes nothing: users and chats are looked up by name, and messages carry fixed client
/// ids, which the store never stores twice.
public struct DemoSeeder: Sendable {
    /// The demo accounts' password. Deliberately weak, like the original's; the registration
    /// policy does not apply to seeded users.
    public static let password = "12345"
    public static let userNames = ["Sergey", "Arina", "Vlad"]
    static let groupName = "Demo group"
    static let privateName = "Sergey & Arina"

    let store: any ChatStore
    let hasher: PasswordHasher
    let chats: ChatService

    public init(store: any ChatStore, hasher: PasswordHasher, rules: InputRules) {
        self.store = store
        self.hasher = hasher
        self.chats = ChatService(store: store, rules: rules)
    }

    /// Creates whatever part of the demo data is missing.
    public func seed() async throws {
        var users: [User] = []
        for name in Self.userNames {
            users.append(try await demoUser(named: name))
        }
        let (sergey, arina, vlad) = (users[0], users[1], users[2])
        let group = try await chat(named: Self.groupName, type: .group, creator: sergey, members: [arina, vlad])
        let pair = try await chat(named: Self.privateName, type: .private, creator: sergey, members: [arina])
        let script: [(ChatID, User, String, String)] = [
            (group, sergey, "demo-group-1", "Welcome to the demo group!"),
            (group, arina, "demo-group-2", "Hi everyone 👋"),
            (group, vlad, "demo-group-3", "Hello! Messages here arrive in order, exactly once."),
            (pair, sergey, "demo-private-1", "Hi Arina, this chat is just the two of us."),
            (pair, arina, "demo-private-2", "Nice, a private chat."),
        ]
        for (chatID, sender, clientID, text) in script {
            _ = try await chats.send(to: chatID, from: sender.id, clientID: clientID, text: text)
        }
    }

    private func demoUser(named name: String) async throws -> User {
        let key = User.key(for: name)
        if let existing = try await store.credentials(loginKey: key) { return existing.user }
        let hash = try await hasher.hash(Self.password)
        return try await store.createUser(NewUser(name: name, email: "\(key)@example.com", passwordHash: hash))
    }

    private func chat(named name: String, type: ChatType, creator: User, members: [User]) async throws -> ChatID {
        let existing = try await store.chatSummaries(for: creator.id).first { $0.chat.name == name }?.chat.id
        let chatID: ChatID
        if let existing {
            chatID = existing
        } else {
            chatID = try await chats.createChat(name: name, type: type, creator: creator.id).chat.id
        }
        for member in members {
            do {
                _ = try await chats.addMember(member.id, to: chatID, by: creator.id)
            } catch ChatError.alreadyMember {
                continue
            }
        }
        return chatID
    }
}
