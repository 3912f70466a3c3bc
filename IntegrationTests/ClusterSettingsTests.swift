import ChatProtocol
import ChatServer
import ChatTestSupport
import HTTPTypes
import HummingbirdTesting
import Testing

/// Nodes that cannot be half-configured: without `CHAT_JWT_SECRET` they share the secret their
/// database generated, and nodes whose shared settings differ say so in `/health/ready`.
@Suite("Settings every node shares", .timeLimit(.minutes(5)))
struct ClusterSettingsTests {
    static let noSecret = ["CHAT_JWT_SECRET": ""]

    /// A readiness answer about shared settings (before, it may be `cluster_unreachable`).
    static func mismatch(_ answer: TestResponse) -> Bool {
        [ErrorCode.clusterSecretMismatch.rawValue, ErrorCode.clusterSettingsMismatch.rawValue]
            .contains(answer.error?.code ?? "")
    }

    @Test func nodesWithoutASecretAcceptEachOthersTokens() async throws {
        try await TestApp.runNodes(2, overrides: Self.noSecret) { nodes in
            let alice = try await nodes[0].user("alice")
            let me = try await nodes[1].send(.get, "/users/me", as: alice)
            #expect(me.status == .ok, "node 2 accepts node 1's token: \(me.status) \(me.bodyText)")
            let bob = try await nodes[1].user("bob")
            #expect(try await nodes[0].send(.get, "/users/me", as: bob).status == .ok, "and the other way")
        }
    }

    @Test func nodesWithDifferentSecretsAreNotReadyAndSayWhy() async throws {
        let secrets: [Int: [String: String]] = [
            0: ["CHAT_JWT_SECRET": "the-first-secret-that-is-long-enough-for-hs256"],
            1: ["CHAT_JWT_SECRET": "the-second-secret-that-is-long-enough-for-hs256"],
        ]
        try await TestApp.runNodes(2, nodeOverrides: secrets, waitUntilReady: false) { nodes in
            for (index, node) in nodes.enumerated() {
                let answer = try await node.readiness(until: Self.mismatch)
                #expect(answer.error?.code == ErrorCode.clusterSecretMismatch.rawValue, "\(answer.bodyText)")
                let other = "node-\(2 - index)"
                #expect(answer.error?.message.contains("\(other) (token_key)") == true, "names the other node")
                #expect(!answer.bodyText.contains("secret-that-is-long"), "never the secret")
            }
            let alice = try await nodes[0].user("alice")
            #expect(try await nodes[1].send(.get, "/users/me", as: alice).status == .unauthorized, "what it prevents")
        }
    }

    @Test func nodesWithDifferentTokenLifetimesAreNotReady() async throws {
        let lifetimes: [Int: [String: String]] = [1: ["CHAT_TOKEN_LIFETIME_SECONDS": "600"]]
        try await TestApp.runNodes(2, nodeOverrides: lifetimes, waitUntilReady: false) { nodes in
            let answer = try await nodes[0].readiness(until: Self.mismatch)
            #expect(answer.error?.code == ErrorCode.clusterSettingsMismatch.rawValue, "\(answer.bodyText)")
            #expect(answer.error?.message.contains("node-2 (token_lifetime)") == true, "\(answer.bodyText)")
        }
    }

    @Test func withoutASecretSessionsOutliveARestartOnSQLite() async throws {
        try await TestDatabase.sqlite.withLocation { location in
            let alice = try await TestApp.run(at: location, testing: .live, overrides: Self.noSecret) { api in
                try await api.user("alice")
            }
            try await TestApp.run(at: location, testing: .live, overrides: Self.noSecret) { api in
                let me = try await api.send(.get, "/users/me", as: alice)
                #expect(me.status == .ok, "the token from before the restart: \(me.status)")
            }
        }
    }
}
