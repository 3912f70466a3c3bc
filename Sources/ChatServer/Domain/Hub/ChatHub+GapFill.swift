import ChatProtocol
import Logging
import ServiceLifecycle
import Synchronization

/// Gap filling: reading from the store the `seq`s a chat's delivery waits for. ``run()`` also
/// serves the reads of updated messages (ChatHub+Updates.swift).
extension ChatHub {
    /// Reads from the store, until graceful shutdown, what the hub has to deliver and did not
    /// get: missing `seq`s (soon for messages committed elsewhere, after the grace period for a
    /// gap among this node's own publications) and updated messages.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await withDiscardingTaskGroup { fills in
                    for await fill in self.gapFillRequests.cancelOnGracefulShutdown() {
                        fills.addTask { await self.fillGap(fill) }
                    }
                    fills.cancelAll()
                }
            }
            group.addTask {
                await withDiscardingTaskGroup { reads in
                    for await chat in self.updateReadRequests.cancelOnGracefulShutdown() {
                        reads.addTask { await self.deliverUpdates(of: chat) }
                    }
                    reads.cancelAll()
                }
            }
        }
    }

    private func fillGap(_ fill: GapFill) async {
        let chat = fill.chat
        // A message published on this node out of order usually comes soon; one committed
        // elsewhere never comes unless read, soon, with whatever else was committed meanwhile.
        try? await clock.sleep(for: fill.urgent ? limits.remoteGathering : limits.gapGrace)
        if let gap = shard(chat).ordering.withLock({ $0.gap(in: chat) }) {
            await read(gap, of: chat)
        }
        if let next = shard(chat).ordering.withLock({ $0.finishGapFill(fill) }) { gapFills.yield(next) }
    }

    /// Reads and publishes the missing messages, or waits a moment when the store fails.
    private func read(_ gap: (after: Int64, count: Int), of chat: ChatID) async {
        do {
            let (missing, members) = try await store.messagesAndMembers(
                in: chat, after: gap.after, limit: gap.count)
            if !missing.isEmpty {
                // A member's removal may reach this node (from another) after messages stored
                // since: the members read with them tell who may no longer have them.
                shard(chat).ordering.withLock { $0.unsubscribe(from: chat, allBut: members) }
            }
            for message in missing {
                _ = publish(Publication(message, origin: nil))
            }
            logger.debug("Filled a gap", metadata: ["chat.chat_id": "\(chat)", "chat.count": "\(missing.count)"])
        } catch {
            logger.warning(
                "Could not fill a gap; retrying", metadata: ["chat.chat_id": "\(chat)", "error": "\(error)"])
            try? await clock.sleep(for: limits.gapRetryDelay)
        }
    }
}

/// A request to read a chat's missing `seq`s; an urgent one (messages committed elsewhere)
/// waits only ``ChatHub/Limits/remoteGathering``, not the grace period.
struct GapFill: Sendable {
    let chat: ChatID
    let urgent: Bool
}
