import ChatProtocol
import NIOHTTP1

extension ConformanceSuite {
    static let historyChecks: [ConformanceCheck] = [
        ConformanceCheck("history pages by offset and by before_seq and after_seq cursors, deep pages included") {
            target in
            let alice = try await target.register("alice")
            let chat = try await target.createChat("history", as: alice)
            let socket = try await target.connect(alice)
            let stored = try await target.store(120, in: chat.id, on: socket, label: "h")
            await socket.close()
            try require(
                stored.map(\.seq) == Array(1...120), "120 sends are stored as seq 1...120: \(stored.map(\.seq))")
            for (query, expected) in [
                ("limit=50", Array(1...50)),
                ("offset=50&limit=50", Array(51...100)),
                ("offset=100&limit=50", Array(101...120)),
                ("offset=119&limit=50", [120]),
                ("offset=120&limit=50", []),
                ("before_seq=121&limit=50", Array(71...120)),
                ("before_seq=51&limit=50", Array(1...50)),
                ("before_seq=11&limit=50", Array(1...10)),
                ("after_seq=0&limit=50", Array(1...50)),
                ("after_seq=110&limit=50", Array(111...120)),
            ] as [(String, [Int64])] {
                let page = try await target.request(.GET, "/history/\(chat.id)?\(query)", token: alice.token)
                    .decode([MessagePayload].self, expecting: 200)
                try require(page.map(\.seq) == expected, "history?\(query): seqs \(page.map(\.seq))")
                try require(
                    page.allSatisfy { message in
                        guard (1...stored.count).contains(Int(message.seq)) else { return false }
                        let acknowledged = stored[Int(message.seq) - 1]
                        return message.id == acknowledged.id && message.text == acknowledged.text
                            && message.clientID == acknowledged.clientID
                    }, "history?\(query): the messages as acknowledged")
            }
            for query in ["limit=0", "limit=1001", "offset=-1", "before_seq=x"] {
                let refused = try await target.request(.GET, "/history/\(chat.id)?\(query)", token: alice.token)
                try require(
                    refused.status == 422 && refused.errorCode == "validation_failed",
                    "history?\(query): \(refused.status) \(refused.text)")
            }
        }
    ]
}
