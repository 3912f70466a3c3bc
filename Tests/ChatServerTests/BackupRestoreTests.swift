import ChatConformance
import ChatProtocol
import ChatServer
import ChatTestSupport
import Foundation
import Testing

@Suite("Backup and restore", .timeLimit(.minutes(5)))
struct BackupRestoreTests {
    /// A client that saw messages the restore lost reads the chat again, as docs/protocol.md
    /// says, and then has every message written after the restore, none of the lost ones.
    @Test func aClientFollowsARestoreThroughTheNewGeneration() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            guard case .sqlite(let path) = location else { return }
            let backup = path + ".backup"
            let (chat, bob, held) = try await TestApp.run(at: location, testing: .live) { api in
                let (alice, bob, chat) = try await RealtimeContract.pair(api)
                try await api.storeMessages(3, in: chat.id, from: alice.id, prefix: "kept")
                try await #require(api.store as? SQLiteChatStore).backup(to: backup)
                try await api.storeMessages(2, in: chat.id, from: alice.id, prefix: "lost")
                let socket = try await ChatWebSocketClient.connect(
                    port: try #require(api.client.port), token: bob.token)
                let held = socket.ready
                await socket.close()
                #expect(held.chats.map(\.lastSeq) == [5])
                return (chat, bob, held)
            }

            let generation = try await SQLiteRestore.restore(path, from: backup, logger: TestDatabase.logger)
            #expect(generation != held.generation)

            try await TestApp.run(at: location, testing: .live) { api in
                try await api.storeMessages(1, in: chat.id, from: chat.creatorID, prefix: "after")
                let socket = try await ChatWebSocketClient.connect(
                    port: try #require(api.client.port), token: bob.token)
                #expect(socket.ready.generation == generation)
                // A client that missed the new generation resumes past the chat's end: refused.
                socket.send(.resume(chatID: chat.id, afterSeq: 5))
                guard case .error(let code, _, let ref, _, let errorChat) = try await socket.next(.error) else {
                    return
                }
                #expect(code == ErrorCode.resyncRequired.rawValue && ref == "resume" && errorChat == chat.id)
                // It reads the chat again, as one that sees the new generation does at once.
                let history = try await api.send(.get, "/history/\(chat.id)", as: bob).decode(
                    [MessagePayload].self, expecting: .ok)
                #expect(history.map(\.clientID) == ["kept-1", "kept-2", "kept-3", "after-1"])
                #expect(history.map(\.seq) == [1, 2, 3, 4])
                await socket.close()
            }
        }
    }

    @Test func aFileThatIsNotADatabaseIsRefusedAndTheDatabaseKept() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            guard case .sqlite(let path) = location else { return }
            let generation = try await TestApp.run(at: location) { api in
                _ = try await api.user("alice")
                return try await api.store.databaseGeneration()
            }
            let notADatabase = path + ".txt"
            try Data("hello".utf8).write(to: URL(fileURLWithPath: notADatabase))
            await #expect(throws: RestoreError.self) {
                try await SQLiteRestore.restore(path, from: notADatabase, logger: TestDatabase.logger)
            }
            let kept = try await TestApp.run(at: location) { api in
                (try await api.store.databaseGeneration(), try await api.store.counts().users)
            }
            #expect(kept == (generation, 1))
        }
    }
}
