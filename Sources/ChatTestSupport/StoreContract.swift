import ChatProtocol
import ChatServer
import Foundation

/// The behaviour every ``ChatStore`` must have, as checks that both test targets run: the unit
/// tests against SQLite, the integration tests against PostgreSQL. A check throws
/// ``ContractFailure`` when the store misbehaves.
public struct StoreContractCheck: Sendable, CustomStringConvertible {
    public let description: String
    public let run: @Sendable (any ChatStore) async throws -> Void
}

public enum StoreContract {
    public static let checks: [StoreContractCheck] = [
        StoreContractCheck(description: "names and emails are unique ignoring case", run: uniqueNamesAndEmails),
        StoreContractCheck(description: "credentials are found by name or email", run: credentialsByNameOrEmail),
        StoreContractCheck(description: "revoked tokens and missing users have no session", run: sessions),
        StoreContractCheck(description: "user search matches name prefixes literally", run: userSearch),
        StoreContractCheck(description: "admin rights can be granted and revoked", run: adminRights),
        StoreContractCheck(description: "a chat's creator is its first member", run: creatorIsFirstMember),
        StoreContractCheck(description: "membership rules are enforced", run: membershipRules),
        StoreContractCheck(
            description: "membership changes are recorded where they happened among the messages",
            run: membershipEvents),
        StoreContractCheck(
            description: "concurrent adds never give a private chat three members", run: concurrentPrivateAdds),
        StoreContractCheck(
            description: "a member leaves; a leaving creator hands the chat to the earliest member", run: leaving),
        StoreContractCheck(
            description: "members leaving at once always leave a member as creator", run: concurrentLeaves),
        StoreContractCheck(description: "messages get gap-free seqs and move the sender's marker", run: sequencing),
        StoreContractCheck(description: "a repeated client id returns the original", run: duplicateSends),
        StoreContractCheck(description: "concurrent sends get gap-free seqs", run: concurrentSends),
        StoreContractCheck(description: "raced duplicates store one message", run: racedDuplicates),
        StoreContractCheck(description: "a batch stores in order and answers per message", run: batchedSends),
        StoreContractCheck(description: "raced batches store a shared client id once", run: racedBatches),
        StoreContractCheck(description: "history pages are seq ranges", run: historyPaging),
        StoreContractCheck(
            description: "edits and deletions take the chat's next update_seq; a deletion leaves a tombstone",
            run: messageChanges),
        StoreContractCheck(description: "concurrent changes get distinct update_seqs in order", run: concurrentChanges),
        StoreContractCheck(description: "a reply keeps the message it answers", run: replies),
        StoreContractCheck(
            description: "search finds words in a member's chats, newest first, marked in a snippet", run: search),
        StoreContractCheck(description: "a gap's messages come with the chat's members", run: messagesAndMembers),
        StoreContractCheck(description: "generated messages continue the seqs in bulk", run: generatedMessages),
        StoreContractCheck(description: "chat summaries show last message and unread count", run: summaries),
        StoreContractCheck(description: "chat details list every chat with its members", run: chatDetails),
        StoreContractCheck(description: "read markers only move forward, up to the last seq", run: readMarkers),
        StoreContractCheck(description: "text is stored verbatim", run: verbatimText),
        StoreContractCheck(description: "migrations go down and up again", run: migrationsRoundTrip),
        StoreContractCheck(description: "counts report rows", run: counts),
        StoreContractCheck(description: "the generation stays until it is renewed", run: generation),
    ]

    // MARK: Users

    static func uniqueNamesAndEmails(_ store: any ChatStore) async throws {
        _ = try await store.createUser(newUser("Sergey", "sergey@example.com"))
        try await requireError(ChatError.nameTaken) {
            _ = try await store.createUser(newUser("sERGEY", "other@example.com"))
        }
        try await requireError(ChatError.emailTaken) {
            _ = try await store.createUser(newUser("Other", "SERGEY@example.com"))
        }
        // Case folding covers every alphabet, not only ASCII.
        _ = try await store.createUser(newUser("Сергей", "cyr@example.com"))
        try await requireError(ChatError.nameTaken) {
            _ = try await store.createUser(newUser("сЕРГЕЙ", "cyr2@example.com"))
        }
    }

    static func credentialsByNameOrEmail(_ store: any ChatStore) async throws {
        let user = try await store.createUser(newUser("Arina", "Arina@Example.com", hash: "stored-hash"))
        for login in ["arina", "ARINA", "arina@example.com"] {
            let found = try await store.credentials(loginKey: User.key(for: login))
            try await require(found?.user == user && found?.passwordHash == "stored-hash", "credentials for \(login)")
        }
        try await require(try await store.credentials(loginKey: "nobody") == nil, "no credentials for an unknown login")
        try await store.updatePasswordHash("new-hash", for: user.id)
        try await require(try await store.credentials(loginKey: "arina")?.passwordHash == "new-hash", "hash updated")
    }

    static func sessions(_ store: any ChatStore) async throws {
        let user = try await store.createUser(newUser("Vlad", "vlad@example.com"))
        let issued = Date(timeIntervalSince1970: 1_800_000_000)
        try await require(
            try await store.sessionUser(user.id, tokenID: "t1", issuedAt: issued) == user, "a fresh token has a session"
        )
        try await store.revokeToken("t1", of: user.id, expiresAt: Date().addingTimeInterval(3600))
        try await store.revokeToken("t1", of: user.id, expiresAt: Date().addingTimeInterval(3600))
        try await require(
            try await store.sessionUser(user.id, tokenID: "t1", issuedAt: issued) == nil,
            "a revoked token has no session")
        try await require(
            try await store.sessionUser(user.id, tokenID: "t2", issuedAt: issued) == user, "other tokens keep working")
        try await require(
            try await store.sessionUser(UserID(999_999), tokenID: "t3", issuedAt: issued) == nil,
            "a missing user has no session")

        try await store.changePassword("changed-hash", for: user.id, sessionsValidFrom: issued.addingTimeInterval(1))
        try await require(
            try await store.credentials(loginKey: "vlad")?.passwordHash == "changed-hash", "the new hash is stored")
        try await require(
            try await store.sessionUser(user.id, tokenID: "t2", issuedAt: issued) == nil,
            "tokens issued before a password change have no session")
        try await require(
            try await store.sessionUser(user.id, tokenID: "t4", issuedAt: issued.addingTimeInterval(1)) == user,
            "tokens issued from then on do")
    }

    static func userSearch(_ store: any ChatStore) async throws {
        for name in ["alice", "Alina", "albert", "bob", "al%ce", "al_x"] {
            _ = try await store.createUser(newUser(name, "\(name.filter(\.isLetter))\(name.count)@example.com"))
        }
        let names = { (prefix: String, limit: Int) in
            try await store.users(nameKeyPrefix: User.key(for: prefix), limit: limit).map(\.name)
        }
        try await require(
            try await names("al", 10) == ["al%ce", "al_x", "albert", "alice", "Alina"], "prefix al, by name")
        try await require(try await names("AL", 2) == ["al%ce", "al_x"], "limit applies")
        try await require(try await names("al%", 10) == ["al%ce"], "% is not a wildcard")
        try await require(try await names("al_", 10) == ["al_x"], "_ is not a wildcard")
        try await require(try await names("zzz", 10).isEmpty, "no match")
        let bob = try await store.users(nameKeyPrefix: User.key(for: "bob"), limit: 1)[0]
        try await require(try await store.user(bob.id) == bob, "a user by id")
        try await require(try await store.user(UserID(999_999)) == nil, "no user with that id")
    }

    static func adminRights(_ store: any ChatStore) async throws {
        let user = try await store.createUser(newUser("Admin", "admin@example.com"))
        try await require(!user.isAdmin, "users start without admin rights")
        try await require(try await store.setAdmin(true, nameKey: "admin")?.isAdmin == true, "granted")
        try await require(try await store.setAdmin(false, nameKey: "admin")?.isAdmin == false, "revoked")
        try await require(try await store.setAdmin(true, nameKey: "nobody") == nil, "unknown name")
    }

    // MARK: Chats

    static func creatorIsFirstMember(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Creator", "creator@example.com"))
        let chat = try await store.createChat(name: "Team", type: .group, creator: creator.id)
        try await require(
            chat.name == "Team" && chat.type == .group && chat.creatorID == creator.id && chat.lastSeq == 0, "chat")
        let members = try await store.members(of: chat.id)
        try await require(
            members == [ChatMember(userID: creator.id, name: "Creator", readSeq: 0)], "creator is the member")
        try await require(try await store.chat(chat.id, member: creator.id) == chat, "visible to its member")
    }

    static func membershipRules(_ store: any ChatStore) async throws {
        let (creator, other, third) = try await threeUsers(store)
        let outsider = try await store.createUser(newUser("Outsider", "outsider@example.com"))
        let group = try await store.createChat(name: "Group", type: .group, creator: creator.id)
        try await require(try await store.chat(group.id, member: outsider.id) == nil, "invisible to non-members")
        try await requireError(ChatError.chatNotFound) { try await store.addMember(other.id, to: ChatID(999_999)) }
        try await requireError(ChatError.userNotFound) { try await store.addMember(UserID(999_999), to: group.id) }
        try await store.addMember(other.id, to: group.id)
        try await store.addMember(third.id, to: group.id)
        try await requireError(ChatError.alreadyMember) { try await store.addMember(other.id, to: group.id) }
        try await require(
            try await store.members(of: group.id).map(\.userID) == [creator.id, other.id, third.id], "joined order")

        let pair = try await store.createChat(name: "Pair", type: .private, creator: creator.id)
        try await store.addMember(other.id, to: pair.id)
        try await requireError(ChatError.privateChatFull) { try await store.addMember(third.id, to: pair.id) }

        try await store.removeMember(third.id, from: group.id)
        try await requireError(ChatError.notAMember) { try await store.removeMember(third.id, from: group.id) }
        try await require(try await store.chat(group.id, member: third.id) == nil, "removed members lose access")

        // A new member's marker starts at the chat's end, so history does not turn unread.
        _ = try await store.appendMessage(NewMessage(chatID: group.id, senderID: creator.id, clientID: "a", text: "a"))
        _ = try await store.appendMessage(NewMessage(chatID: group.id, senderID: other.id, clientID: "b", text: "b"))
        try await store.addMember(outsider.id, to: group.id)
        let joined = try await store.members(of: group.id).first { $0.userID == outsider.id }
        try await require(joined?.readSeq == 2, "new member's marker is at the end")
    }

    static func membershipEvents(_ store: any ChatStore) async throws {
        let (creator, other, third) = try await threeUsers(store)
        let group = try await store.createChat(name: "Group", type: .group, creator: creator.id)
        try await store.addMember(other.id, to: group.id, by: creator.id)
        _ = try await store.appendMessage(NewMessage(chatID: group.id, senderID: creator.id, clientID: "a", text: "a"))
        _ = try await store.appendMessage(NewMessage(chatID: group.id, senderID: other.id, clientID: "b", text: "b"))
        try await store.addMember(third.id, to: group.id)
        try await store.removeMember(other.id, from: group.id, by: creator.id)
        // Refused changes record nothing.
        try await requireError(ChatError.notAMember) {
            try await store.removeMember(other.id, from: group.id, by: creator.id)
        }
        try await requireError(ChatError.alreadyMember) {
            try await store.addMember(third.id, to: group.id, by: creator.id)
        }
        _ = try await store.appendMessage(NewMessage(chatID: group.id, senderID: third.id, clientID: "c", text: "c"))

        let all = try await store.membershipEvents(in: group.id, afterSeqs: 0...3, limit: 10)
        let seen = all.map { "\($0.kind) \($0.userName) by \($0.actorName ?? "-") after \($0.afterSeq)" }
        try await require(
            seen == ["added Second by First after 0", "added Third by - after 2", "removed Second by First after 2"],
            "every change, in order, after the message that was last (\(seen))")
        try await require(
            all.allSatisfy { $0.chatID == group.id } && all.map(\.user) == [other.id, third.id, other.id]
                && all.map(\.actor) == [creator.id, nil, creator.id],
            "the ids of the members and of who changed them")
        try await require(
            try await store.membershipEvents(in: group.id, afterSeqs: 1...2, limit: 10).map(\.id)
                == Array(all.map(\.id)[1...]),
            "a range of seqs selects the events after those messages")
        try await require(
            try await store.membershipEvents(in: group.id, afterSeqs: 0...3, limit: 2).map(\.id)
                == Array(all.map(\.id)[..<2]),
            "the limit keeps the oldest")
        let elsewhere = try await store.createChat(name: "Elsewhere", type: .group, creator: creator.id)
        try await require(
            try await store.membershipEvents(in: elsewhere.id, afterSeqs: 0...3, limit: 10).isEmpty,
            "another chat's events stay there")
    }

    static func concurrentPrivateAdds(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Owner", "owner@example.com"))
        var candidates: [UserID] = []
        for index in 0..<12 {
            candidates.append(try await store.createUser(newUser("Candidate\(index)", "c\(index)@example.com")).id)
        }
        let chat = try await store.createChat(name: "Pair", type: .private, creator: creator.id)
        let successes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for candidate in candidates {
                group.addTask {
                    do {
                        try await store.addMember(candidate, to: chat.id)
                        return true
                    } catch ChatError.privateChatFull {
                        return false
                    }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        try await require(successes == 1, "exactly one concurrent add succeeds (got \(successes))")
        try await require(try await store.members(of: chat.id).count == 2, "the private chat has two members")
    }

    static func leaving(_ store: any ChatStore) async throws {
        let (creator, other, third) = try await threeUsers(store)
        let group = try await store.createChat(name: "Group", type: .group, creator: creator.id)
        try await store.addMember(other.id, to: group.id)
        try await store.addMember(third.id, to: group.id)
        _ = try await store.appendMessage(NewMessage(chatID: group.id, senderID: third.id, clientID: "a", text: "a"))
        try await require(
            try await store.leaveChat(third.id, chat: group.id) == nil, "a member leaves, the creator stays")
        try await require(try await store.chat(group.id, member: third.id) == nil, "who left loses access")
        try await requireError(ChatError.chatNotFound) { _ = try await store.leaveChat(third.id, chat: group.id) }
        try await requireError(ChatError.chatNotFound) {
            _ = try await store.leaveChat(other.id, chat: ChatID(999_999))
        }
        let event = try await store.membershipEvents(in: group.id, afterSeqs: 0...1, limit: 10).last
        try await require(
            event?.kind == .removed && event?.user == third.id && event?.actor == third.id && event?.afterSeq == 1,
            "a leave is recorded with the member as its actor, after the chat's last message")

        try await store.addMember(third.id, to: group.id)
        try await require(
            try await store.leaveChat(creator.id, chat: group.id) == other.id, "the member who joined earliest succeeds"
        )
        let creatorNow = try await store.chat(group.id, member: other.id)?.creatorID
        let membersNow = try await store.members(of: group.id).map(\.userID)
        try await require(
            creatorNow == other.id && membersNow == [other.id, third.id],
            "the new creator is stored, and the members are the others")
        try await require(try await store.leaveChat(third.id, chat: group.id) == nil, "the creator did not change")
        try await require(try await store.leaveChat(other.id, chat: group.id) == nil, "the last member leaves")
        try await require(try await store.members(of: group.id).isEmpty, "the chat is left without members")

        let pair = try await store.createChat(name: "Pair", type: .private, creator: creator.id)
        try await store.addMember(other.id, to: pair.id)
        try await require(try await store.leaveChat(creator.id, chat: pair.id) == other.id, "a private chat too")
        try await require(
            try await store.members(of: pair.id).map(\.userID) == [other.id], "a private chat keeps its other member")
    }

    static func concurrentLeaves(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Owner", "owner@example.com"))
        let group = try await store.createChat(name: "Group", type: .group, creator: creator.id)
        var members: [UserID] = []
        for index in 0..<6 {
            let member = try await store.createUser(newUser("Member\(index)", "m\(index)@example.com")).id
            try await store.addMember(member, to: group.id)
            members.append(member)
        }
        // The creator and the next four leave at once: whoever is promoted must still be there.
        let leaving = [creator.id] + members.prefix(4)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for user in leaving { tasks.addTask { _ = try await store.leaveChat(user, chat: group.id) } }
            try await tasks.waitForAll()
        }
        let remaining = try await store.members(of: group.id).map(\.userID)
        try await require(remaining == Array(members.suffix(2)), "the others remain (\(remaining))")
        let creatorNow = try await store.chat(group.id, member: remaining[0])?.creatorID
        try await require(
            creatorNow.map(remaining.contains) == true,
            "the creator is one of the remaining members (\(String(describing: creatorNow)))")
    }

    // MARK: Messages

    static func sequencing(_ store: any ChatStore) async throws {
        let (creator, other, outsider) = try await threeUsers(store)
        let chat = try await store.createChat(name: "Seq", type: .group, creator: creator.id)
        try await store.addMember(other.id, to: chat.id)
        var seqs: [Int64] = []
        for (index, sender) in [creator, other, creator].enumerated() {
            let appended = try await store.appendMessage(
                NewMessage(chatID: chat.id, senderID: sender.id, clientID: "s\(index)", text: "hello \(index)"))
            try await require(!appended.duplicate && appended.message.chatID == chat.id, "stored")
            seqs.append(appended.message.seq)
        }
        try await require(seqs == [1, 2, 3], "seqs are 1, 2, 3 (got \(seqs))")
        try await require(try await store.chat(chat.id, member: creator.id)?.lastSeq == 3, "last_seq follows")
        let markers = Dictionary(
            uniqueKeysWithValues: try await store.members(of: chat.id).map { ($0.userID, $0.readSeq) })
        try await require(markers[creator.id] == 3 && markers[other.id] == 2, "senders' markers follow their sends")
        try await requireError(ChatError.notAMember) {
            _ = try await store.appendMessage(
                NewMessage(chatID: chat.id, senderID: outsider.id, clientID: "x", text: "x"))
        }
        try await requireError(ChatError.notAMember) {
            _ = try await store.appendMessage(
                NewMessage(chatID: ChatID(999_999), senderID: creator.id, clientID: "y", text: "y"))
        }
        try await require(
            try await store.chat(chat.id, member: creator.id)?.lastSeq == 3, "refused sends consume no seq")
    }

    static func duplicateSends(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Dup", "dup@example.com"))
        let chat = try await store.createChat(name: "Dup", type: .group, creator: creator.id)
        let other = try await store.createChat(name: "Other", type: .group, creator: creator.id)
        let first = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: creator.id, clientID: "c1", text: "one"))
        let again = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: creator.id, clientID: "c1", text: "changed"))
        try await require(again.duplicate && again.message == first.message, "a retry returns the original")
        let elsewhere = try await store.appendMessage(
            NewMessage(chatID: other.id, senderID: creator.id, clientID: "c1", text: "x"))
        try await require(
            elsewhere.duplicate && elsewhere.message == first.message, "client ids are unique per sender, forever")
        let next = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: creator.id, clientID: "c2", text: "two"))
        try await require(next.message.seq == 2, "duplicates consume no seq")
        let anonymous1 = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: creator.id, clientID: nil, text: "n"))
        let anonymous2 = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: creator.id, clientID: nil, text: "n"))
        try await require(
            !anonymous1.duplicate && !anonymous2.duplicate && anonymous2.message.seq == 4, "no client id, no dedupe")
    }

    static func concurrentSends(_ store: any ChatStore) async throws {
        let (a, b, c) = try await threeUsers(store)
        let chat = try await store.createChat(name: "Busy", type: .group, creator: a.id)
        try await store.addMember(b.id, to: chat.id)
        try await store.addMember(c.id, to: chat.id)
        let perSender = 20
        let seqs = try await withThrowingTaskGroup(of: Int64.self) { group in
            for sender in [a, b, c] {
                for index in 0..<perSender {
                    group.addTask {
                        try await store.appendMessage(
                            NewMessage(chatID: chat.id, senderID: sender.id, clientID: "p\(index)", text: "t")
                        ).message.seq
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        try await require(seqs.sorted() == Array(1...Int64(3 * perSender)), "every seq once, no gaps")
        let history = try await store.messages(in: chat.id, .offset(0, limit: 1000))
        try await require(history.map(\.seq) == Array(1...Int64(3 * perSender)), "history holds them in order")
    }

    static func racedDuplicates(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Racer", "racer@example.com"))
        let chat = try await store.createChat(name: "Race", type: .group, creator: creator.id)
        let results = try await withThrowingTaskGroup(of: AppendedMessage.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    try await store.appendMessage(
                        NewMessage(chatID: chat.id, senderID: creator.id, clientID: "same", text: "hi"))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        try await require(Set(results.map(\.message.id)).count == 1, "one message id for every racer")
        try await require(results.filter { !$0.duplicate }.count == 1, "exactly one racer stored it")
        try await require(try await store.chat(chat.id, member: creator.id)?.lastSeq == 1, "one seq consumed")
    }

    static func batchedSends(_ store: any ChatStore) async throws {
        let (a, b, outsider) = try await threeUsers(store)
        let chat = try await store.createChat(name: "Batch", type: .group, creator: a.id)
        try await store.addMember(b.id, to: chat.id)
        let original = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: b.id, clientID: "old", text: "old"))
        let results = try await store.appendMessages([
            NewMessage(chatID: chat.id, senderID: a.id, clientID: "1", text: "one"),
            NewMessage(chatID: chat.id, senderID: outsider.id, clientID: "x", text: "not a member"),
            NewMessage(chatID: chat.id, senderID: b.id, clientID: "old", text: "retry"),
            NewMessage(chatID: chat.id, senderID: b.id, clientID: nil, text: "two"),
            NewMessage(chatID: chat.id, senderID: a.id, clientID: "3", text: "three"),
        ])
        try await require(results.count == 5, "one result per message")
        let stored = results.compactMap { try? $0.get() }
        try await require(
            stored.map(\.message.seq) == [2, original.message.seq, 3, 4]
                && stored.map(\.duplicate) == [false, true, false, false]
                && stored.map(\.message.text) == ["one", "old", "two", "three"],
            "new messages take the next seqs in order; the retry returns the original")
        try await require(results[1] == .failure(.notAMember), "an outsider's send is refused")
        let markers = try await store.members(of: chat.id).map(\.readSeq)
        try await require(markers == [4, 3], "each sender's marker moves to their last message")
        try await require(try await store.appendMessages([]).isEmpty, "an empty batch stores nothing")
        try await require(
            try await store.messages(in: chat.id, .offset(0, limit: 10)).map(\.seq) == [1, 2, 3, 4], "no gaps")
    }

    static func messageChanges(_ store: any ChatStore) async throws {
        let (a, b, _) = try await threeUsers(store)
        let chat = try await store.createChat(name: "Edits", type: .group, creator: a.id)
        let other = try await store.createChat(name: "Other", type: .group, creator: a.id)
        try await store.addMember(b.id, to: chat.id)
        var sent: [Message] = []
        for text in ["one", "two", "three"] {
            sent.append(
                try await store.appendMessage(NewMessage(chatID: chat.id, senderID: b.id, clientID: text, text: text))
                    .message)
        }
        _ = try await store.appendMessage(NewMessage(chatID: other.id, senderID: a.id, clientID: "o", text: "other"))
        try await require(
            sent.allSatisfy { $0.updateSeq == 0 && $0.editedAt == nil && !$0.deleted },
            "a new message was never changed")
        let edited = try await store.changeMessage(sent[1].id, .edit(text: "two, fixed"))
        try await require(
            edited?.text == "two, fixed" && edited?.updateSeq == 1 && edited?.editedAt != nil
                && edited?.seq == sent[1].seq && edited?.createdAt == sent[1].createdAt,
            "an edit keeps the message's place and takes update_seq 1")
        let deleted = try await store.changeMessage(sent[0].id, .delete)
        try await require(
            deleted?.deleted == true && deleted?.text == "" && deleted?.updateSeq == 2 && deleted?.editedAt == nil,
            "a deletion empties the text and takes update_seq 2")
        let editedTombstone = try await store.changeMessage(sent[0].id, .edit(text: "back"))
        let deletedTombstone = try await store.changeMessage(sent[0].id, .delete)
        try await require(editedTombstone == nil && deletedTombstone == nil, "a tombstone changes no more")
        let again = try await store.changeMessage(sent[1].id, .edit(text: "two, again"))
        try await require(again?.updateSeq == 3, "update_seqs count per chat")
        let lastUpdates = (
            try await store.chat(chat.id, member: a.id)?.lastUpdate,
            try await store.chat(other.id, member: a.id)?.lastUpdate
        )
        try await require(
            lastUpdates == (3, 0), "the chat keeps its last update_seq; other chats keep theirs")
        let updates = try await store.updatedMessages(in: chat.id, after: 0, limit: 10)
        try await require(
            updates.map(\.id) == [sent[0].id, sent[1].id] && updates.map(\.updateSeq) == [2, 3],
            "updated messages come once each, in their current state, by update_seq")
        let afterTwo = try await store.updatedMessages(in: chat.id, after: 2, limit: 10)
        let firstOnly = try await store.updatedMessages(in: chat.id, after: 0, limit: 1)
        try await require(
            afterTwo.map(\.id) == [sent[1].id] && firstOnly.map(\.id) == [sent[0].id], "after and limit apply")
        let history = try await store.messages(in: chat.id, .offset(0, limit: 10))
        try await require(
            history.map(\.seq) == [1, 2, 3] && history.map(\.text) == ["", "two, again", "three"]
                && history.map(\.deleted) == [true, false, false],
            "the tombstone stays in history, which stays gap-free")
        try await require(try await store.message(sent[2].id) == sent[2], "a message is found by id")
        let unknownChanged = try await store.changeMessage(MessageID(999_999), .delete)
        let unknown = try await store.message(MessageID(999_999))
        try await require(unknownChanged == nil && unknown == nil, "an unknown id changes nothing")
    }

    static func concurrentChanges(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Editor", "editor@example.com"))
        let chat = try await store.createChat(name: "Busy edits", type: .group, creator: creator.id)
        var messages: [Message] = []
        for index in 0..<4 {
            messages.append(
                try await store.appendMessage(
                    NewMessage(chatID: chat.id, senderID: creator.id, clientID: "e\(index)", text: "v0")
                ).message)
        }
        let changes = 24
        let results = try await withThrowingTaskGroup(of: Message?.self) { group in
            for index in 0..<changes {
                let target = messages[index % messages.count].id
                group.addTask { try await store.changeMessage(target, .edit(text: "v\(index + 1)")) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let updateSeqs = results.compactMap { $0?.updateSeq }
        try await require(
            updateSeqs.count == changes && Set(updateSeqs) == Set(1...Int64(changes)),
            "every change takes its own update_seq, none skipped")
        let final = try await store.updatedMessages(in: chat.id, after: 0, limit: 100)
        try await require(
            final.count == messages.count && final.map(\.updateSeq) == final.map(\.updateSeq).sorted(),
            "each message once, in update_seq order")
        for message in final {
            let last = results.compactMap { $0 }.filter { $0.id == message.id }.max { $0.updateSeq < $1.updateSeq }
            try await require(message.text == last?.text, "a message holds the text of its last change")
        }
    }

    static func replies(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Replier", "replier@example.com"))
        let chat = try await store.createChat(name: "Thread", type: .group, creator: creator.id)
        let other = try await store.createChat(name: "Elsewhere", type: .group, creator: creator.id)
        let question = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: creator.id, clientID: "q", text: "why?")
        ).message
        let elsewhere = try await store.appendMessage(
            NewMessage(chatID: other.id, senderID: creator.id, clientID: "x", text: "x")
        ).message
        let answer = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: creator.id, clientID: "a", text: "because", replyTo: question.id)
        ).message
        try await require(answer.replyTo == question.id && question.replyTo == nil, "reply_to is stored")
        _ = try await store.changeMessage(question.id, .delete)
        try await require(
            try await store.messages(in: chat.id, .offset(0, limit: 10)).last?.replyTo == question.id,
            "a reply still points at its deleted original")
        try await require(
            try await store.chats(ofMessages: [question.id, elsewhere.id, MessageID(999_999)])
                == [question.id: chat.id, elsewhere.id: other.id],
            "the chat of each message that exists")
    }

    static func search(_ store: any ChatStore) async throws {
        let (a, b, _) = try await threeUsers(store)
        let team = try await store.createChat(name: "Team", type: .group, creator: a.id)
        let hidden = try await store.createChat(name: "Hidden", type: .group, creator: a.id)
        try await store.addMember(b.id, to: team.id)
        var sent: [Message] = []
        for text in [
            "Встреча в понедельник", "Meeting on Monday", "the cat sat", "Two meetings, <b>one</b> & more",
            "Встреча отменена",
        ] {
            sent.append(
                try await store.appendMessage(
                    NewMessage(chatID: team.id, senderID: a.id, clientID: "s\(sent.count)", text: text)
                ).message)
        }
        _ = try await store.appendMessage(
            NewMessage(chatID: hidden.id, senderID: a.id, clientID: "h", text: "meeting in secret"))
        let ids = { (hits: [SearchHit]) in hits.map(\.message.id) }

        let meetings = try await store.searchMessages(["meeting"], in: .chatsOf(b.id), before: nil, limit: 10)
        try await require(
            ids(meetings) == [sent[3].id, sent[1].id],
            "an English word finds its forms, newest first, in the member's chats only: \(meetings.map(\.message.text))"
        )
        let marked = meetings.last?.snippet ?? ""
        try await require(
            marked.contains("\(SearchHit.markStart)Meeting\(SearchHit.markEnd)"),
            "the snippet marks the word: \(marked)")
        let russian = try await store.searchMessages(["встреча"], in: .chatsOf(b.id), before: nil, limit: 10)
        try await require(ids(russian) == [sent[4].id, sent[0].id], "Russian words, ignoring case")
        let both = try await store.searchMessages(["встреча", "отменена"], in: .chatsOf(b.id), before: nil, limit: 10)
        try await require(ids(both) == [sent[4].id], "every word must match")
        let page = try await store.searchMessages(["встреча"], in: .chatsOf(b.id), before: sent[4].id, limit: 1)
        try await require(ids(page) == [sent[0].id], "before and limit page through")
        let own = try await store.searchMessages(["meeting"], in: .chat(hidden.id), before: nil, limit: 10)
        try await require(own.map(\.message.text) == ["meeting in secret"], "one chat's results")

        _ = try await store.changeMessage(sent[1].id, .delete)
        _ = try await store.changeMessage(sent[2].id, .edit(text: "the dog sat"))
        let afterChanges = try await store.searchMessages(["meeting"], in: .chatsOf(b.id), before: nil, limit: 10)
        try await require(ids(afterChanges) == [sent[3].id], "a deleted message vanishes")
        let cats = try await store.searchMessages(["cat"], in: .chatsOf(b.id), before: nil, limit: 10)
        let dogs = try await store.searchMessages(["dog"], in: .chatsOf(b.id), before: nil, limit: 10)
        try await require(cats.isEmpty && ids(dogs) == [sent[2].id], "an edited message is found by its new text")
        let nothing = try await store.searchMessages(["zebra"], in: .chatsOf(b.id), before: nil, limit: 10)
        try await require(nothing.isEmpty, "no match, no result")
    }

    static func racedBatches(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Batcher", "batcher@example.com"))
        let chat = try await store.createChat(name: "Batches", type: .group, creator: creator.id)
        // Two batches race, each with a message of its own and one client id they share: the
        // shared one is stored once, and the batch that loses still stores its own message.
        for round in 0..<10 {
            let results = try await withThrowingTaskGroup(of: [Result<AppendedMessage, ChatError>].self) { group in
                for side in ["a", "b"] {
                    group.addTask {
                        try await store.appendMessages([
                            NewMessage(chatID: chat.id, senderID: creator.id, clientID: "\(side)\(round)", text: side),
                            NewMessage(chatID: chat.id, senderID: creator.id, clientID: "s\(round)", text: "shared"),
                        ])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let own = try results.map { try $0[0].get() }
            let shared = try results.map { try $0[1].get() }
            try await require(own.allSatisfy { !$0.duplicate }, "round \(round): each batch stores its own message")
            try await require(
                shared[0].message.id == shared[1].message.id && shared.filter { !$0.duplicate }.count == 1,
                "round \(round): the shared client id is stored once")
        }
        try await require(
            try await store.messages(in: chat.id, .offset(0, limit: 100)).map(\.seq) == Array(1...30), "no gaps")
    }

    static func historyPaging(_ store: any ChatStore) async throws {
        let creator = try await store.createUser(newUser("Pager", "pager@example.com"))
        let chat = try await store.createChat(name: "Pages", type: .group, creator: creator.id)
        for index in 1...25 {
            _ = try await store.appendMessage(
                NewMessage(chatID: chat.id, senderID: creator.id, clientID: "h\(index)", text: "\(index)"))
        }
        let seqs = { (query: HistoryQuery) in try await store.messages(in: chat.id, query).map(\.seq) }
        try await require(try await seqs(.offset(0, limit: 10)) == Array(1...10), "first page")
        try await require(try await seqs(.offset(20, limit: 10)) == Array(21...25), "last page")
        try await require(try await seqs(.offset(25, limit: 10)).isEmpty, "past the end")
        try await require(try await seqs(.before(seq: 26, limit: 5)) == Array(21...25), "latest page")
        try await require(try await seqs(.before(seq: 3, limit: 5)) == [1, 2], "before the start")
        try await require(try await seqs(.after(seq: 22, limit: 5)) == [23, 24, 25], "after a cursor")
        try await require(try await store.messages(in: ChatID(999_999), .offset(0, limit: 5)).isEmpty, "unknown chat")
    }

    static func messagesAndMembers(_ store: any ChatStore) async throws {
        let (creator, member, _) = try await threeUsers(store)
        let chat = try await store.createChat(name: "Gap", type: .group, creator: creator.id)
        try await store.addMember(member.id, to: chat.id)
        for index in 1...5 {
            _ = try await store.appendMessage(
                NewMessage(chatID: chat.id, senderID: creator.id, clientID: "g\(index)", text: "\(index)"))
        }
        try await store.removeMember(member.id, from: chat.id)
        let read = try await store.messagesAndMembers(in: chat.id, after: 2, limit: 2)
        try await require(read.messages.map(\.seq) == [3, 4] && read.messages[0].text == "3", "the page after seq 2")
        try await require(read.members == [creator.id], "the members as of the read, without the removed one")
        let past = try await store.messagesAndMembers(in: chat.id, after: 5, limit: 10)
        try await require(past.messages.isEmpty && past.members == [creator.id], "no messages past the end")
    }

    static func generatedMessages(_ store: any ChatStore) async throws {
        guard let bulk = store as? any BulkMessageFill else {
            throw ContractFailure(description: "the store cannot fill a chat in bulk")
        }
        let (creator, _, outsider) = try await threeUsers(store)
        let chat = try await store.createChat(name: "Bulk", type: .group, creator: creator.id)
        _ = try await store.appendMessage(NewMessage(chatID: chat.id, senderID: creator.id, clientID: "1", text: "one"))
        try await require(try await bulk.appendGeneratedMessages(1000, to: chat.id, from: creator.id) == 1001, "last")
        let page = try await store.messages(in: chat.id, .offset(999, limit: 5))
        try await require(page.map(\.seq) == [1000, 1001], "seqs continue without a gap")
        try await require(page.last?.text == "message 1001" && page.last?.clientID == nil, "generated text")
        let next = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: creator.id, clientID: "2", text: "two"))
        try await require(next.message.seq == 1002, "later sends follow")
        try await requireError(ChatError.notAMember) {
            _ = try await bulk.appendGeneratedMessages(5, to: chat.id, from: outsider.id)
        }
        try await requireError(ChatError.invalidField("count", "must be at least 1")) {
            _ = try await bulk.appendGeneratedMessages(0, to: chat.id, from: creator.id)
        }
        try await require(try await store.chat(chat.id, member: creator.id)?.lastSeq == 1002, "refusals change nothing")
        let words = ["alpha", "бета", "gamma", "дельта", "epsilon"]
        try await require(
            try await bulk.appendGeneratedMessages(3, to: chat.id, from: creator.id, words: words) == 1005,
            "generated from words")
        try await bulk.refreshStatistics()
        let worded = try await store.messages(in: chat.id, .after(seq: 1002, limit: 3))
        for message in worded {
            let expected = (1...Int64(generatedWordsPerMessage)).map {
                words[generatedWordIndex(seq: message.seq, position: $0, count: words.count)]
            }
            try await require(
                message.text == expected.joined(separator: " "), "the words the formula picks: \(message.text)")
        }
    }

    static func summaries(_ store: any ChatStore) async throws {
        let (a, b, _) = try await threeUsers(store)
        let quiet = try await store.createChat(name: "Quiet", type: .group, creator: a.id)
        let pair = try await store.createChat(name: "Pair", type: .private, creator: a.id)
        try await store.addMember(b.id, to: pair.id)
        _ = try await store.appendMessage(NewMessage(chatID: pair.id, senderID: a.id, clientID: "1", text: "hi b"))
        _ = try await store.appendMessage(NewMessage(chatID: pair.id, senderID: b.id, clientID: "2", text: "hi a"))
        _ = try await store.appendMessage(NewMessage(chatID: pair.id, senderID: b.id, clientID: "3", text: "there?"))

        let forA = try await store.chatSummaries(for: a.id)
        try await require(forA.map(\.chat.id) == [pair.id, quiet.id], "newest activity first")
        let pairForA = forA[0]
        try await require(pairForA.lastMessage?.text == "there?" && pairForA.lastMessage?.seq == 3, "last message")
        try await require(pairForA.unreadCount == 2 && pairForA.readSeq == 1, "a has two unread")
        try await require(!pairForA.isLastMessageRead, "a has not read b's last message")
        try await require(forA[1].lastMessage == nil && forA[1].unreadCount == 0, "an empty chat")
        try await require(pairForA.lastSenderName == b.name && forA[1].lastSenderName == nil, "the last sender's name")
        try await store.removeMember(b.id, from: pair.id)
        let afterRemoval = try await store.chatSummaries(for: a.id).first { $0.chat.id == pair.id }
        try await require(afterRemoval?.lastSenderName == b.name, "a former member's name stays")
        try await store.addMember(b.id, to: pair.id)

        let pairForB = try await store.chatSummaries(for: b.id).first { $0.chat.id == pair.id }
        try await require(pairForB?.unreadCount == 0, "b sent last, so b has nothing unread")
    }

    static func chatDetails(_ store: any ChatStore) async throws {
        let (a, b, c) = try await threeUsers(store)
        let first = try await store.createChat(name: "First", type: .group, creator: a.id)
        let second = try await store.createChat(name: "Second", type: .private, creator: b.id)
        try await store.addMember(b.id, to: first.id)
        try await store.addMember(c.id, to: first.id)
        try await store.addMember(a.id, to: second.id)
        let details = try await store.chatDetails(for: a.id)
        try await require(details.map(\.chat.id) == [first.id, second.id], "both chats, by id")
        try await require(details[0].members.map(\.userID) == [a.id, b.id, c.id], "members in joined order")
        try await require(details[1].members.map(\.userID) == [b.id, a.id], "the private chat's members")
        try await require(try await store.chatDetails(for: c.id).map(\.chat.id) == [first.id], "only c's chats")
    }

    static func readMarkers(_ store: any ChatStore) async throws {
        let (a, b, outsider) = try await threeUsers(store)
        let chat = try await store.createChat(name: "Reads", type: .group, creator: a.id)
        try await store.addMember(b.id, to: chat.id)
        for index in 1...5 {
            _ = try await store.appendMessage(
                NewMessage(chatID: chat.id, senderID: a.id, clientID: "r\(index)", text: "t"))
        }
        try await require(try await store.advanceReadMarker(of: b.id, in: chat.id, to: 3) == 3, "moves forward")
        try await require(try await store.advanceReadMarker(of: b.id, in: chat.id, to: 2) == nil, "never back")
        try await require(try await store.advanceReadMarker(of: b.id, in: chat.id, to: 3) == nil, "unchanged")
        try await require(
            try await store.advanceReadMarker(of: b.id, in: chat.id, to: 99) == 5, "not past the last seq")
        let marker = try await store.members(of: chat.id).first { $0.userID == b.id }?.readSeq
        try await require(marker == 5, "stored")
        try await requireError(ChatError.notAMember) {
            _ = try await store.advanceReadMarker(of: outsider.id, in: chat.id, to: 1)
        }
    }

    static func verbatimText(_ store: any ChatStore) async throws {
        let tricky = "'; DROP TABLE messages; -- \\ \" % _ 😀 \u{202E}abc\n\ttab"
        let user = try await store.createUser(newUser("O'Brien \"; --", "obrien@example.com"))
        let chat = try await store.createChat(name: "Robert'); DROP TABLE chats;--", type: .group, creator: user.id)
        let stored = try await store.appendMessage(
            NewMessage(chatID: chat.id, senderID: user.id, clientID: "q'\"", text: tricky))
        let read = try await store.messages(in: chat.id, .offset(0, limit: 1)).first
        try await require(
            read?.text == tricky && read?.clientID == "q'\"" && read == stored.message, "text round-trips")
        try await require(
            try await store.chat(chat.id, member: user.id)?.name == "Robert'); DROP TABLE chats;--", "chat name")
        try await require(
            try await store.credentials(loginKey: User.key(for: "O'Brien \"; --"))?.user.id == user.id, "user name")
    }

    static func migrationsRoundTrip(_ store: any ChatStore) async throws {
        let applied = try await store.migrationStatus()
        try await require(!applied.isEmpty && applied.allSatisfy { $0.appliedAt != nil }, "all applied")
        try await require(try await store.migrateUp().isEmpty, "applying again does nothing")
        let reverted = try await store.migrateDown(steps: applied.count)
        try await require(
            reverted.map(\.version) == applied.map(\.migration.version).reversed(), "reverted newest first")
        try await require(try await store.migrationStatus().allSatisfy { $0.appliedAt == nil }, "all pending")
        try await require(try await store.migrateUp().count == applied.count, "applied again")
        let user = try await store.createUser(newUser("After", "after@example.com"))
        try await require(user.name == "After", "the schema works after a round trip")
    }

    static func counts(_ store: any ChatStore) async throws {
        let (a, b, _) = try await threeUsers(store)
        let chat = try await store.createChat(name: "Count", type: .group, creator: a.id)
        try await store.addMember(b.id, to: chat.id)
        for index in 0..<4 {
            _ = try await store.appendMessage(
                NewMessage(chatID: chat.id, senderID: a.id, clientID: "k\(index)", text: "k"))
        }
        let counts = try await store.counts()
        try await require(counts == StoreCounts(users: 3, chats: 1, members: 2, messages: 4), "counts \(counts)")
    }

    static func generation(_ store: any ChatStore) async throws {
        let first = try await store.databaseGeneration()
        try await require(first.count == 32 && first.allSatisfy(\.isHexDigit), "a random hex id: \(first)")
        try await require(try await store.databaseGeneration() == first, "read twice, the same")
        let renewed = try await store.renewDatabaseGeneration()
        try await require(renewed != first, "renewing changes it")
        try await require(try await store.databaseGeneration() == renewed, "the renewed one stays")
    }

    // MARK: Helpers

    static func newUser(_ name: String, _ email: String, hash: String = "hash") -> NewUser {
        NewUser(name: name, email: email, passwordHash: hash)
    }

    static func threeUsers(_ store: any ChatStore) async throws -> (User, User, User) {
        (
            try await store.createUser(newUser("First", "first@example.com")),
            try await store.createUser(newUser("Second", "second@example.com")),
            try await store.createUser(newUser("Third", "third@example.com"))
        )
    }
}
