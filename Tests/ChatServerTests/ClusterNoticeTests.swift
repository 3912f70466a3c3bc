import ChatProtocol
import Testing

@testable import ChatServer

/// What nodes read from each other's notifications, and how presence from several nodes adds up.
@Suite("Cluster notices and presence")
struct ClusterNoticeTests {
    @Test func triggerPayloadsAndEventsAreRead() throws {
        let (node, body) = try #require(ClusterNotice.split("node-1\ncommits 7:42 8:13"))
        #expect(node == "node-1")
        #expect(
            ClusterNotice(body: body)
                == .committed([.init(chat: ChatID(7), lastSeq: 42), .init(chat: ChatID(8), lastSeq: 13)]))
        #expect(ClusterNotice(body: "all chats") == .committedInAllChats)

        let event = ClusterEvent.presence(user: UserID(3), online: true, version: 99)
        let payload = ClusterNotice.payload(of: event, from: "eu.node_2")
        let (sender, rest) = try #require(ClusterNotice.split(payload))
        #expect(sender == "eu.node_2" && ClusterNotice(body: rest) == .event(event))
    }

    @Test func aProbeReadsAsCommitsInNoChats() throws {
        let (node, body) = try #require(ClusterNotice.split(ClusterNotice.probe(from: "node-1")))
        #expect(node == "node-1" && ClusterNotice(body: body) == .committed([]))
    }

    @Test(arguments: ["commits 7", "commits 7:x", "commits", "all", "{\"nonsense\":{}}", ""])
    func malformedBodiesAreRefused(_ body: String) {
        #expect(ClusterNotice(body: Substring(body)) == nil)
    }

    @Test func aPayloadWithoutANodeLineIsRefused() {
        #expect(ClusterNotice.split("commits 7:42") == nil)
    }

    @Test func theNewestPresenceWinsWhateverOrderItArrivesIn() {
        let alice = UserID(1)
        var presence = RemotePresence()
        let cameOnline = presence.apply(user: alice, online: true, version: 10, from: "b")
        let older = presence.apply(user: alice, online: false, version: 9, from: "b")
        #expect(cameOnline && !older && presence.isOnline(alice), "an older event is old news")
        // A heartbeat listed before alice left (version 11) must not bring her back after the
        // event that she left (version 12).
        let left = presence.apply(user: alice, online: false, version: 12, from: "b")
        let stale = PostgresChatStore.NodeHeartbeat(
            node: "b", presenceVersion: 11, onlineUsers: [alice], sharedSettings: "")
        let afterStale = presence.apply(heartbeats: [stale], readSince: presence.noticeMark)
        #expect(left && afterStale.isEmpty && !presence.isOnline(alice))
    }

    @Test func aUserIsOnlineWhileAnyNodeHoldsThemAndGoesWithTheNode() {
        let alice = UserID(1)
        var presence = RemotePresence()
        let beats = [
            PostgresChatStore.NodeHeartbeat(node: "b", presenceVersion: 5, onlineUsers: [alice], sharedSettings: ""),
            PostgresChatStore.NodeHeartbeat(node: "c", presenceVersion: 7, onlineUsers: [alice], sharedSettings: ""),
        ]
        let beaten = presence.apply(heartbeats: beats, readSince: presence.noticeMark)
        #expect(beaten == [alice: true])
        let bStopped = presence.remove("b")
        #expect(bStopped.isEmpty, "still on c")
        let cExpired = presence.apply(heartbeats: [], readSince: presence.noticeMark)
        #expect(cExpired == [alice: false], "c's heartbeat expired")
    }

    /// A heartbeat read that began before a node's first event does not know the node: its
    /// users stay online until a read that began later leaves the node out too.
    @Test func aHeartbeatReadBeforeANodesEventDoesNotEraseIt() {
        let bob = UserID(2)
        var presence = RemotePresence()
        let readSince = presence.noticeMark
        let cameOnline = presence.apply(user: bob, online: true, version: 2, from: "new")
        #expect(cameOnline)
        let staleRead = presence.apply(heartbeats: [], readSince: readSince)
        #expect(staleRead.isEmpty && presence.isOnline(bob), "the read began before the event")
        let laterRead = presence.apply(heartbeats: [], readSince: presence.noticeMark)
        #expect(laterRead == [bob: false], "a read that began after it leaves the node out: gone")
    }
}
