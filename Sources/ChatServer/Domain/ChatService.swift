import ChatProtocol

/// Chats, membership and history, with the rules that govern them: only members see a chat,
/// only its creator manages members, the creator stays, and history is read by `seq`.
public struct ChatService: Sendable {
    let store: any AccountStore & ChatDirectory & MessageLog
    /// Where sends are stored, batched per chat.
    let appender: MessageAppender
    let rules: InputRules
    /// Where membership changes are announced to open connections.
    let events: (any ChatEvents)?
    /// Openings of private chats on this node take turns (``openPrivateChat(with:for:)``).
    private let privateChatOpenings = AsyncLock()

    /// Largest page of history one request may ask for.
    public static let maxHistoryLimit = 1000

    /// - Parameter stopwatch: what send admission measures batch times on.
    public init(
        store: any AccountStore & ChatDirectory & MessageLog, rules: InputRules, events: (any ChatEvents)? = nil,
        sendLimits: SendAdmission.Limits = .default, stopwatch: Stopwatch = Stopwatch(ContinuousClock())
    ) {
        self.store = store
        self.appender = MessageAppender(store: store, limits: sendLimits, stopwatch: stopwatch)
        self.rules = rules
        self.events = events
    }

    public func createChat(name: String, type: ChatType, creator: UserID) async throws -> ChatDetails {
        let chat = try await store.createChat(name: try rules.chatName(name), type: type, creator: creator)
        return ChatDetails(chat: chat, members: try await store.members(of: chat.id))
    }

    /// A chat the viewer belongs to, with its members.
    /// - Throws: ``ChatError/chatNotFound`` when it does not exist or the viewer is not a member.
    public func details(of chatID: ChatID, viewer: UserID) async throws -> ChatDetails {
        let chat = try await chat(chatID, member: viewer)
        return ChatDetails(chat: chat, members: try await store.members(of: chat.id))
    }

    /// The PRIVATE chat of `caller` and `other` ("Message Arina"), created when they have none:
    /// named after both, `caller` its creator. `created` says which. Openings on one node take
    /// turns, so two taps or two devices at once find one chat; two nodes at the same moment
    /// could each create one (docs/web-client.md).
    /// - Throws: ``ChatError/userNotFound`` for an unknown user, ``ChatError/privateChatWithSelf``
    ///   for the caller themselves.
    public func openPrivateChat(with other: UserID, for caller: User) async throws -> (ChatDetails, created: Bool) {
        guard other != caller.id else { throw ChatError.privateChatWithSelf }
        return try await privateChatOpenings.withLock {
            let existing = try await store.chatDetails(for: caller.id).first { details in
                details.chat.type == .private && Set(details.members.map(\.userID)) == [caller.id, other]
            }
            if let existing { return (existing, false) }
            guard let person = try await store.user(other) else { throw ChatError.userNotFound }
            let chat = try await store.createChat(
                name: Self.privateChatName(caller.name, person.name), type: .private, creator: caller.id)
            try await store.addMember(other, to: chat.id, by: caller.id)
            let details = ChatDetails(chat: chat, members: try await store.members(of: chat.id))
            events?.memberAdded(details, user: other)
            return (details, true)
        }
    }

    /// "Alice & Arina", within a chat name's length.
    static func privateChatName(_ first: String, _ second: String) -> String {
        let name = "\(first) & \(second)"
        guard name.count > InputRules.maxChatNameLength else { return name }
        return String(name.prefix(InputRules.maxChatNameLength - 1)) + "…"
    }

    /// Adds `user` to the chat on behalf of `actor`, who must be its creator.
    public func addMember(_ user: UserID, to chatID: ChatID, by actor: UserID) async throws -> ChatDetails {
        let chat = try await chat(chatID, member: actor)
        guard chat.creatorID == actor else { throw ChatError.creatorOnly }
        try await store.addMember(user, to: chat.id, by: actor)
        let details = try await details(of: chat.id, viewer: actor)
        events?.memberAdded(details, user: user)
        return details
    }

    /// Removes `user` from the chat on behalf of `actor`, who must be its creator.
    public func removeMember(_ user: UserID, from chatID: ChatID, by actor: UserID) async throws -> ChatDetails {
        let chat = try await chat(chatID, member: actor)
        guard chat.creatorID == actor else { throw ChatError.creatorOnly }
        guard user != chat.creatorID else { throw ChatError.creatorCannotBeRemoved }
        try await store.removeMember(user, from: chat.id, by: actor)
        events?.memberRemoved(chat: chat.id, user: user)
        return try await details(of: chat.id, viewer: actor)
    }

    /// `user` leaves the chat. Their connections stop receiving it at once; when they created
    /// it, the member who joined earliest becomes its creator, and the members are told.
    /// - Returns: the chat as it is afterwards, with its remaining members.
    /// - Throws: ``ChatError/chatNotFound`` when `user` is not a member.
    public func leave(_ chatID: ChatID, user: UserID) async throws -> ChatDetails {
        let chat = try await chat(chatID, member: user)
        let newCreator = try await store.leaveChat(user, chat: chat.id)
        events?.memberRemoved(chat: chat.id, user: user, newCreator: newCreator)
        let after = Chat(
            id: chat.id, name: chat.name, type: chat.type, creatorID: newCreator ?? chat.creatorID,
            createdAt: chat.createdAt, lastSeq: chat.lastSeq, lastUpdate: chat.lastUpdate)
        return ChatDetails(chat: after, members: try await store.members(of: chat.id))
    }

    /// Most membership events one request may ask for.
    public static let maxMembershipEventsLimit = 500

    /// The membership events that come after messages `fromSeq` through `toSeq` of a chat,
    /// for a member; none when `toSeq` is below `fromSeq`.
    /// - Throws: ``ChatError/chatNotFound`` when the viewer is not a member.
    public func membershipEvents(
        in chatID: ChatID, viewer: UserID, fromSeq: Int64, toSeq: Int64, limit: Int
    ) async throws -> [MembershipEvent] {
        guard (1...Self.maxMembershipEventsLimit).contains(limit) else {
            throw ChatError.invalidField("limit", "must be from 1 to \(Self.maxMembershipEventsLimit)")
        }
        guard fromSeq >= 0 else { throw ChatError.invalidField("from_seq", "must not be negative") }
        guard toSeq >= 0 else { throw ChatError.invalidField("to_seq", "must not be negative") }
        let chat = try await chat(chatID, member: viewer)
        guard fromSeq <= toSeq else { return [] }
        return try await store.membershipEvents(in: chat.id, afterSeqs: fromSeq...toSeq, limit: limit)
    }

    /// The user's chats, newest activity first.
    public func chats(for user: UserID) async throws -> [ChatSummary] {
        try await store.chatSummaries(for: user)
    }

    /// The user's chats with their members, by id: what a new connection starts with.
    public func chatDetails(for user: UserID) async throws -> [ChatDetails] {
        try await store.chatDetails(for: user)
    }

    /// A page of history with read status, for a member of the chat.
    public func history(of chatID: ChatID, viewer: UserID, query: HistoryQuery) async throws -> [HistoryItem] {
        let (field, position, limit): (String, Int64, Int) =
            switch query {
            case .offset(let offset, let limit): ("offset", offset, limit)
            case .before(let seq, let limit): ("before_seq", seq, limit)
            case .after(let seq, let limit): ("after_seq", seq, limit)
            }
        guard (1...Self.maxHistoryLimit).contains(limit) else {
            throw ChatError.invalidField("limit", "must be from 1 to \(Self.maxHistoryLimit)")
        }
        guard position >= 0 else { throw ChatError.invalidField(field, "must not be negative") }
        // The members prove membership and carry the read markers: nothing of the page leaves
        // this function unless the viewer is a member.
        let (page, members) = try await store.historyPage(in: chatID, query)
        guard members.contains(where: { $0.userID == viewer }) else { throw ChatError.chatNotFound }
        let markers = ReadMarkers(members)
        return page.map { HistoryItem(message: $0, isRead: markers.isRead($0)) }
    }

    /// Validates and stores a message from a member.
    public func send(
        to chatID: ChatID, from sender: UserID, clientID: String?, text: String, replyTo: MessageID? = nil
    ) async throws
        -> AppendedMessage
    {
        try await appender.append(
            try message(to: chatID, from: sender, clientID: clientID, text: text, replyTo: replyTo))
    }

    /// Validates a message from a member and queues it to be stored, returning at once: sends
    /// queued one after another into a chat are stored in that order. `stored` gets the outcome,
    /// in `seq` order with the other sends of its batch; it must not block.
    /// A reply to a message of another chat is stored nowhere: `stored` gets
    /// ``ChatError/invalidReply``.
    /// - Throws: ``ChatError/invalidField(_:_:)`` for a bad text or client id;
    ///   ``ChatError/overloaded(retryAfterMilliseconds:)`` when the node cannot store it soon
    ///   enough (``SendAdmission``). Then `stored` is never called.
    public func enqueueSend(
        to chatID: ChatID, from sender: UserID, clientID: String?, text: String, replyTo: MessageID? = nil,
        stored: @escaping @Sendable (Result<AppendedMessage, any Error>) -> Void
    ) throws {
        try appender.enqueue(
            message(to: chatID, from: sender, clientID: clientID, text: text, replyTo: replyTo), answer: stored)
    }

    private func message(
        to chatID: ChatID, from sender: UserID, clientID: String?, text: String, replyTo: MessageID?
    ) throws
        -> NewMessage
    {
        NewMessage(
            chatID: chatID, senderID: sender, clientID: try clientID.map(rules.clientID),
            text: try rules.messageText(text), replyTo: replyTo)
    }

    /// What a reconnecting member missed of a chat: the messages after `afterSeq`, and with
    /// `afterUpdate` the messages up to `afterSeq` edited or deleted after that `update_seq`
    /// (in `update_seq` order), at most `limit` of each.
    /// - Returns: nil when more than `limit` of either were missed (the client should page
    ///   through history instead).
    /// - Throws: ``ChatError/resyncRequired(lastSeq:)`` for a position past the chat's end
    ///   (the database was restored).
    public func catchUp(
        in chatID: ChatID, viewer: UserID, afterSeq: Int64, afterUpdate: Int64?, limit: Int
    ) async throws
        -> (updated: [HistoryItem], messages: [HistoryItem])?
    {
        let chat = try await chat(chatID, member: viewer)
        guard afterSeq >= 0 else { throw ChatError.invalidField("after_seq", "must not be negative") }
        guard afterUpdate ?? 0 >= 0 else { throw ChatError.invalidField("after_update", "must not be negative") }
        // Past the end, the client saw positions the database no longer has: it was restored.
        guard afterSeq <= chat.lastSeq, afterUpdate ?? 0 <= chat.lastUpdate else {
            throw ChatError.resyncRequired(lastSeq: chat.lastSeq)
        }
        let messages = try await store.messages(in: chat.id, .after(seq: afterSeq, limit: limit + 1))
        guard messages.count <= limit else { return nil }
        var updated: [Message] = []
        if let afterUpdate, afterUpdate < chat.lastUpdate {
            updated = try await store.updatedMessages(in: chat.id, after: afterUpdate, limit: limit + 1)
            guard updated.count <= limit else { return nil }
            // Later messages come whole, as they are now.
            updated.removeAll { $0.seq > afterSeq }
        }
        guard !messages.isEmpty || !updated.isEmpty else { return ([], []) }
        let markers = ReadMarkers(try await store.members(of: chat.id))
        let items = { (messages: [Message]) in messages.map { HistoryItem(message: $0, isRead: markers.isRead($0)) } }
        return (items(updated), items(messages))
    }

    /// Moves the reader's marker forward (never back, never past the chat's end).
    /// - Returns: the new marker, or nil when it did not move.
    public func markRead(in chatID: ChatID, reader: UserID, upTo seq: Int64) async throws -> Int64? {
        guard seq >= 0 else { throw ChatError.invalidField("seq", "must not be negative") }
        return try await store.advanceReadMarker(of: reader, in: chatID, to: seq)
    }

    private func chat(_ id: ChatID, member: UserID) async throws -> Chat {
        guard let chat = try await store.chat(id, member: member) else { throw ChatError.chatNotFound }
        return chat
    }
}
