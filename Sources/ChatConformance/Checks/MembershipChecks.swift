import ChatProtocol
import NIOHTTP1

extension ConformanceSuite {
    static let membershipChecks: [ConformanceCheck] = [
        ConformanceCheck("a PRIVATE chat never takes a third member, even when ten are added at once") { target in
            let owner = try await target.register("owner")
            let candidates = try await (0..<10).asyncMap { try await target.register("candidate\($0)") }
            let chat = try await target.createChat("private", type: .private, as: owner)
            let statuses = try await withThrowingTaskGroup(of: ConformanceTarget.Reply.self) { group in
                for candidate in candidates {
                    group.addTask { try await target.addUser(candidate, to: chat.id, as: owner) }
                }
                return try await group.reduce(into: [ConformanceTarget.Reply]()) { $0.append($1) }
            }
            try require(statuses.filter { $0.status == 200 }.count == 1, "one add succeeds: \(statuses.map(\.status))")
            for refused in statuses where refused.status != 200 {
                try require(
                    refused.status == 409 && refused.errorCode == "private_chat_full",
                    "the others get 409 private_chat_full: \(refused.status) \(refused.text)")
            }
            let stored = try await target.request(.GET, "/chats/\(chat.id)", token: owner.token)
                .decode(ChatPayload.self, expecting: 200)
            try require(stored.members.count == 2, "the chat has two members: \(stored.members)")
        },
        ConformanceCheck("only a group's creator adds and removes members; others get 403 creator_only") { target in
            let (creator, member, outsider) = (
                try await target.register("creator"), try await target.register("member"),
                try await target.register("outsider")
            )
            let chat = try await target.group("team", of: creator, with: [member])
            let add = try await target.addUser(outsider, to: chat.id, as: member)
            try require(
                add.status == 403 && add.errorCode == "creator_only", "a member adds: \(add.status) \(add.text)")
            let remove = try await target.removeUser(creator, from: chat.id, as: member)
            try require(
                remove.status == 403 && remove.errorCode == "creator_only", "a member removes: \(remove.status)")
            let stranger = try await target.addUser(outsider, to: chat.id, as: outsider)
            try require(stranger.status == 404, "someone outside the chat: \(stranger.status) \(stranger.text)")
            let removed = try await target.removeUser(member, from: chat.id, as: creator)
            try require(removed.status == 200, "the creator removes a member: \(removed.status) \(removed.text)")
        },
    ]
}
