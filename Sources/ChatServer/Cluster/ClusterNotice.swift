import ChatProtocol
import Foundation

/// One notification on the cluster channel. Its payload is the name of the node that wrote
/// the messages or announced the event, a line break, and one of:
///
/// - `commits 7:42 8:13`: messages committed, each chat with its new last `seq` (sent by the
///   database's trigger, migration 0003);
/// - `all chats`: messages committed in more chats than a payload lists: check every chat;
/// - an event a node announced, as JSON.
///
/// A node skips its own notifications by their first line, without reading the rest, but for
/// noting that it heard them: its ``probe(from:)`` proves that its LISTEN connection still hears.
enum ClusterNotice: Equatable {
    /// A chat and its last `seq` after a commit.
    struct Commit: Equatable {
        let chat: ChatID
        let lastSeq: Int64
    }

    case committed([Commit])
    case committedInAllChats
    case event(ClusterEvent)

    /// The payload of an event announced by `node`.
    static func payload(of event: ClusterEvent, from node: String) -> String {
        // Encoding these plain values cannot fail.
        node + "\n" + String(decoding: (try? JSONEncoder().encode(event)) ?? Data(), as: UTF8.self)
    }

    /// The payload a node sends to hear it back: a commit notice of no chats, which every
    /// node, of any version, reads as nothing to do.
    static func probe(from node: String) -> String {
        node + "\ncommits "
    }

    /// The sending node and the rest of a payload, or nil when it has no first line.
    static func split(_ payload: String) -> (node: Substring, body: Substring)? {
        guard let lineBreak = payload.firstIndex(of: "\n") else { return nil }
        return (payload[..<lineBreak], payload[payload.index(after: lineBreak)...])
    }

    /// Reads the body of a payload; nil when it is in none of the formats.
    init?(body: Substring) {
        if body.hasPrefix("commits ") {
            var commits: [Commit] = []
            for pair in body.dropFirst("commits ".count).split(separator: " ") {
                let parts = pair.split(separator: ":")
                guard parts.count == 2, let chat = Int64(parts[0]), let lastSeq = Int64(parts[1]) else { return nil }
                commits.append(Commit(chat: ChatID(chat), lastSeq: lastSeq))
            }
            self = .committed(commits)
        } else if body == "all chats" {
            self = .committedInAllChats
        } else if let event = try? JSONDecoder().decode(ClusterEvent.self, from: Data(body.utf8)) {
            self = .event(event)
        } else {
            return nil
        }
    }
}

/// What one node tells the others, so that their connections hear of it too.
enum ClusterEvent: Codable, Sendable, Equatable {
    case memberAdded(chat: ChatID, user: UserID)
    case memberRemoved(chat: ChatID, user: UserID, newCreator: UserID? = nil)
    case read(chat: ChatID, user: UserID, seq: Int64)
    case typing(chat: ChatID, user: UserID)
    /// Messages of the chat were edited or deleted, the last under `upTo` (an `update_seq`).
    case messagesUpdated(chat: ChatID, upTo: Int64)
    /// The user's first connection on the node opened, or their last one closed. `version`
    /// orders the node's presence changes and heartbeats (see ``RemotePresence``).
    case presence(user: UserID, online: Bool, version: Int64)
    case sessionRevoked(tokenID: String)
    case sessionsEnded(user: UserID)
    /// An administrator asked for memberships to be rebuilt from the database.
    case resync
    /// The node is shutting down: its users' presence ends now rather than at expiry.
    case stopped
}

/// Who is online on the other nodes, from their presence events and heartbeats.
///
/// Each node numbers its presence changes in order. A heartbeat carries the number reached
/// before the node listed its users, so it reflects every change numbered up to it: an event
/// numbered at most that is old news, and a later one overrides the heartbeat. Notifications
/// from one node may arrive out of order (they leave on different connections); the numbers
/// keep the newest.
///
/// A heartbeat read is a snapshot taken before it is applied: a node that announced itself
/// after the snapshot began is not in it, yet is alive. Such a node is kept until a read that
/// began after its last event (``noticeMark``); otherwise its users would flap offline and back.
struct RemotePresence {
    private struct Status {
        var online: Bool
        var version: Int64
    }

    /// Per node: the version of its last heartbeat applied, and what is known per user.
    private var nodes: [String: (version: Int64, users: [UserID: Status])] = [:]
    /// Counts the presence events applied; per node, the count at its last one.
    private(set) var noticeMark = 0
    private var lastNotice: [String: Int] = [:]

    func isOnline(_ user: UserID) -> Bool {
        nodes.values.contains { $0.users[user]?.online == true }
    }

    /// Applies a presence event from `node`; returns whether the user's status changed.
    mutating func apply(user: UserID, online: Bool, version: Int64, from node: String) -> Bool {
        let before = isOnline(user)
        var entry = nodes[node] ?? (version: 0, users: [:])
        guard version > entry.version, version > entry.users[user]?.version ?? 0 else { return false }
        entry.users[user] = Status(online: online, version: version)
        nodes[node] = entry
        noticeMark += 1
        lastNotice[node] = noticeMark
        return before != isOnline(user)
    }

    /// Replaces what is known with the heartbeats of the nodes alive: nodes without one are
    /// gone, and so is their users' presence, unless an event of theirs came after the read
    /// began.
    /// - Parameter readSince: ``noticeMark`` when the heartbeats were read.
    /// - Returns: the users whose status changed, with the new one.
    mutating func apply(heartbeats: [PostgresChatStore.NodeHeartbeat], readSince: Int) -> [UserID: Bool] {
        let affected = Set(nodes.values.flatMap(\.users.keys) + heartbeats.flatMap(\.onlineUsers))
        let before = Dictionary(uniqueKeysWithValues: affected.map { ($0, isOnline($0)) })
        var updated: [String: (version: Int64, users: [UserID: Status])] = [:]
        for heartbeat in heartbeats {
            let known = nodes[heartbeat.node]
            if let known, known.version > heartbeat.presenceVersion {
                updated[heartbeat.node] = known
                continue
            }
            var users = Dictionary(
                uniqueKeysWithValues: heartbeat.onlineUsers.map {
                    ($0, Status(online: true, version: heartbeat.presenceVersion))
                })
            for (user, status) in known?.users ?? [:] where status.version > heartbeat.presenceVersion {
                users[user] = status
            }
            updated[heartbeat.node] = (heartbeat.presenceVersion, users)
        }
        for (node, known) in nodes where updated[node] == nil && lastNotice[node] ?? 0 > readSince {
            updated[node] = known
        }
        nodes = updated
        lastNotice = lastNotice.filter { updated[$0.key] != nil }
        return changes(since: before)
    }

    /// Forgets a node that stopped.
    /// - Returns: the users whose status changed, with the new one.
    mutating func remove(_ node: String) -> [UserID: Bool] {
        let affected = nodes[node]?.users.keys.map { $0 } ?? []
        let before = Dictionary(uniqueKeysWithValues: affected.map { ($0, isOnline($0)) })
        nodes[node] = nil
        lastNotice[node] = nil
        return changes(since: before)
    }

    private func changes(since before: [UserID: Bool]) -> [UserID: Bool] {
        var changed: [UserID: Bool] = [:]
        for (user, wasOnline) in before where isOnline(user) != wasOnline {
            changed[user] = !wasOnline
        }
        return changed
    }
}
