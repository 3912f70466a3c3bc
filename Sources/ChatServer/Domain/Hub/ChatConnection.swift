import ChatProtocol
import Synchronization

/// Identifies one WebSocket connection on this server.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int

    private static let next = Atomic<Int>(1)

    /// A new id, unique within the process.
    public static func make() -> ConnectionID {
        ConnectionID(rawValue: next.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    public var description: String { String(rawValue) }
}

/// One connected device of a user, as the hub sees it: where its frames go and which chats it
/// follows.
public final class ChatConnection: Sendable {
    public let id: ConnectionID
    public let userID: UserID
    /// The session token the connection was opened with; logging it out closes the connection.
    public let tokenID: String
    /// When set, the connection follows only this chat (`/ws?chat_id=`).
    public let narrowedTo: ChatID?
    public let outbox: Outbox

    private struct State {
        var chats: Set<ChatID> = []
        var isGone = false
    }

    private let state = Mutex(State())

    public init(id: ConnectionID = .make(), userID: UserID, tokenID: String, narrowedTo: ChatID?, outbox: Outbox) {
        self.id = id
        self.userID = userID
        self.tokenID = tokenID
        self.narrowedTo = narrowedTo
        self.outbox = outbox
    }

    /// Whether the connection may follow `chat` at all.
    func accepts(_ chat: ChatID) -> Bool {
        narrowedTo == nil || narrowedTo == chat
    }

    /// Records that the connection follows `chat`; false once the connection is gone, so a
    /// subscription can never outlive it.
    func track(_ chat: ChatID) -> Bool {
        state.withLock { state in
            guard !state.isGone else { return false }
            state.chats.insert(chat)
            return true
        }
    }

    func untrack(_ chat: ChatID) {
        _ = state.withLock { $0.chats.remove(chat) }
    }

    /// The chats the connection follows.
    var chats: Set<ChatID> { state.withLock { $0.chats } }

    /// Marks the connection gone and returns the chats it followed, for unsubscribing.
    func markGone() -> Set<ChatID> {
        state.withLock { state in
            state.isGone = true
            return state.chats
        }
    }
}
