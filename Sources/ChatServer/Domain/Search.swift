import ChatProtocol
import Foundation

/// Which messages a search looks at: those of every chat a user is a member of, or of one chat.
public enum SearchScope: Sendable, Equatable {
    case chatsOf(UserID)
    case chat(ChatID)
}

/// A message found by a search, with a snippet of its text.
public struct SearchHit: Sendable, Equatable {
    /// Enclose the matched words in a store's raw snippet; control characters, which message
    /// texts never contain (``InputRules/messageText(_:)``).
    public static let markStart: Character = "\u{2}"
    public static let markEnd: Character = "\u{3}"

    public let message: Message
    /// The raw snippet, its matched words between ``markStart`` and ``markEnd``.
    public let snippet: String

    public init(message: Message, snippet: String) {
        self.message = message
        self.snippet = snippet
    }

    /// The snippet as the API gives it: HTML-escaped text with the matched words in `<mark>`.
    public var markedSnippet: String {
        snippet.htmlEscaped.replacingOccurrences(of: String(Self.markStart), with: "<mark>")
            .replacingOccurrences(of: String(Self.markEnd), with: "</mark>")
    }
}

/// `GET /search`: full-text search of the messages a user can see, with the rules that govern
/// a query (docs/api-tour.md, "Search").
public struct MessageSearch: Sendable {
    /// Longest query, in characters.
    public static let maxQueryLength = 200
    /// Most words a query may have.
    public static let maxWords = 10
    /// Most results one page may ask for, and how many come without asking.
    public static let maxLimit = 100
    public static let defaultLimit = 20

    let store: any ChatDirectory & MessageLog

    public init(store: any ChatDirectory & MessageLog) {
        self.store = store
    }

    /// A page of results for `query`, newest first, each with its read status, and the cursor
    /// of the next page (nil on the last one).
    /// - Throws: ``ChatError/invalidField(_:_:)`` for an empty or too long query, one without
    ///   a word, or a bad `limit` or `before`; ``ChatError/chatNotFound`` for a chat the user
    ///   is not a member of.
    public func search(
        _ query: String, for user: UserID, in chat: ChatID?, before: MessageID?, limit: Int
    ) async throws -> (hits: [(hit: SearchHit, isRead: Bool)], next: MessageID?) {
        let words = try Self.words(of: query)
        guard (1...Self.maxLimit).contains(limit) else {
            throw ChatError.invalidField("limit", "must be from 1 to \(Self.maxLimit)")
        }
        if let before, before.rawValue < 1 { throw ChatError.invalidField("before", "must be a message id") }
        var scope = SearchScope.chatsOf(user)
        if let chat {
            guard try await store.chat(chat, member: user) != nil else { throw ChatError.chatNotFound }
            scope = .chat(chat)
        }
        let hits = try await store.searchMessages(words, in: scope, before: before, limit: limit)
        var markers: [ChatID: ReadMarkers] = [:]
        for chat in Set(hits.map(\.message.chatID)) {
            markers[chat] = ReadMarkers(try await store.members(of: chat))
        }
        let withStatus = hits.map { ($0, markers[$0.message.chatID]?.isRead($0.message) ?? false) }
        return (withStatus, hits.count == limit ? hits.last?.message.id : nil)
    }

    /// The words a query searches for: its runs of letters and digits. Everything else (the
    /// operators of either database's query syntax among it) only separates words.
    static func words(of query: String) throws -> [String] {
        let trimmed = query.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw ChatError.invalidField("q", "must not be empty") }
        guard trimmed.count <= maxQueryLength else {
            throw ChatError.invalidField("q", "must be at most \(maxQueryLength) characters long")
        }
        let words = trimmed.split { !($0.isLetter || $0.isNumber) }.map { String($0).lowercased() }
        guard !words.isEmpty else { throw ChatError.invalidField("q", "must contain a word (letters or digits)") }
        guard words.count <= maxWords else { throw ChatError.invalidField("q", "must have at most \(maxWords) words") }
        return words
    }
}
