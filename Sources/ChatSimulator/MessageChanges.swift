import ChatProtocol
import Synchronization

/// Edits and deletions during a run (`mixed`): the chats whose messages were changed, each with
/// a member who can read it, so that the check can compare every device with the final state.
final class MessageChanges: Sendable {
    private let changed = Mutex<[ChatID: ServerAPI.User]>([:])

    func record(_ chat: ChatID, member: ServerAPI.User) {
        changed.withLock { $0[chat] = member }
    }

    var chats: [ChatID: ServerAPI.User] { changed.withLock { $0 } }
}

extension Simulation {
    /// Changes messages the devices' users sent, `perSecond` times a second until `end`: reads a
    /// chat's newest page as one of its members, and edits one of that member's messages, or
    /// deletes it (a `deleteShare` of the changes).
    func changeMessages(
        _ changes: MessageChanges, devices: [Device], chatsOfUser: [[ChatID]], perSecond: Double, deleteShare: Double,
        until end: ContinuousClock.Instant
    ) async -> [String: Report.LatencySummary] {
        var number = 0
        return await paced("edit_or_delete", perSecond: perSecond, seed: options.seed &+ 2, until: end) { random in
            let index = Int.random(in: 0..<devices.count, using: &random)
            let user = devices[index].user
            let chat = chatsOfUser[index].randomElement(using: &random)!
            let deletes = Double.random(in: 0..<1, using: &random) < deleteShare
            do {
                let page = try await api.latestMessages(of: chat, limit: 20, as: user)
                guard let target = page.filter({ $0.senderID == user.id && !$0.deleted }).randomElement(using: &random)
                else { return nil }
                number += 1
                let start = monotonicNanoseconds()
                if deletes {
                    try await api.deleteMessage(target.id, as: user)
                } else {
                    try await api.editMessage(target.id, text: "edited by chatsim \(number)", as: user)
                }
                changes.record(chat, member: user)
                return (monotonicNanoseconds() - start) / 1000
            } catch {
                options.log("a message change failed: \(error)")
                return nil
            }
        }
    }

    /// Searches the chats of a random device's user for a word of one of a chat's newest
    /// messages, `perSecond` times a second until `end`.
    func searchMessages(
        devices: [Device], chatsOfUser: [[ChatID]], perSecond: Double, until end: ContinuousClock.Instant
    ) async -> [String: Report.LatencySummary] {
        await paced("search", perSecond: perSecond, seed: options.seed &+ 3, until: end) { random in
            let index = Int.random(in: 0..<devices.count, using: &random)
            let user = devices[index].user
            let chat = chatsOfUser[index].randomElement(using: &random)!
            do {
                let page = try await api.latestMessages(of: chat, limit: 5, as: user)
                guard let word = page.randomElement(using: &random)?.text.split(separator: " ").first else {
                    return nil
                }
                let start = monotonicNanoseconds()
                _ = try await api.search(String(word), limit: 20, as: user)
                return (monotonicNanoseconds() - start) / 1000
            } catch {
                options.log("a search failed: \(error)")
                return nil
            }
        }
    }

    /// The server's final state of every changed message of the chats `changes` names, read
    /// from history once the run has drained: per chat, `(seq, update_seq)` by message id.
    func finalVersions(of changes: MessageChanges) async throws -> [Int64: [Int64: (seq: Int64, updateSeq: Int64)]] {
        var versions: [Int64: [Int64: (seq: Int64, updateSeq: Int64)]] = [:]
        for (chat, member) in changes.chats {
            var after: Int64 = 0
            while true {
                let page = try await api.messages(of: chat, after: after, limit: 1000, as: member)
                for message in page where message.updateSeq > 0 {
                    versions[chat.rawValue, default: [:]][message.id.rawValue] = (message.seq, message.updateSeq)
                }
                guard page.count == 1000, let last = page.last else { break }
                after = last.seq
            }
        }
        return versions
    }
}
