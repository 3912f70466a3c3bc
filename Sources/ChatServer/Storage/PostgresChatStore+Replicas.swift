import ChatProtocol
import PostgresNIO

/// Reads from streaming replicas (docs/operations.md, "Read replicas").
///
/// A read goes to a replica in rotation only when the replica has everything the client had
/// seen when the read began: it has replayed where the primary's WAL was at the request's
/// session check (``ReadScope``), or it has the chats read as far as the primary had them
/// then: their messages (`last_seq`, up to what the read can return), their edits
/// (`last_update`) and, when the read returns members, their membership and read markers. So a
/// client never reads older data from a replica than it has seen, and a member just added or
/// removed is not judged by stale membership. Otherwise, and whenever the replica fails, the
/// primary serves the read: a replica costs latency at worst, never data.
extension PostgresChatStore {
    /// How far one chat has come: what a replica must have replayed to serve a read of it.
    struct ChatPositions: Sendable, Equatable {
        var lastSeq: Int64
        var lastUpdate: Int64
        var lastMembershipEvent: Int64
        /// The sum of the members' read markers: markers only move forward, so a replica with
        /// the primary's membership and sum has every marker the primary has.
        var readMarkers: Int64

        /// From a ``positionsQuery(_:)`` row.
        init(_ row: (Int64, Int64, Int64, Int64)) {
            (lastSeq, lastUpdate, lastMembershipEvent, readMarkers) = row
        }

        init(lastSeq: Int64, lastUpdate: Int64, lastMembershipEvent: Int64 = 0, readMarkers: Int64 = 0) {
            (self.lastSeq, self.lastUpdate, self.lastMembershipEvent, self.readMarkers) =
                (lastSeq, lastUpdate, lastMembershipEvent, readMarkers)
        }

        /// Whether these positions are as far as `needed`.
        func cover(_ needed: ChatPositions) -> Bool {
            lastSeq >= needed.lastSeq && lastUpdate >= needed.lastUpdate
                && lastMembershipEvent >= needed.lastMembershipEvent && readMarkers >= needed.readMarkers
        }
    }

    /// Runs `read` on a replica that has replayed `chat` as far as `needed` asks of the
    /// primary's positions, else on the primary (``readCaughtUp(positions:covers:read:)``).
    /// - Parameter needed: from the primary's positions of the chat, the ones the read needs
    ///   (a page of old messages needs no newer `seq` than its last).
    func readChat<T: Sendable>(
        _ chat: ChatID, needing needed: @escaping @Sendable (ChatPositions) -> ChatPositions = { $0 },
        read: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await readCaughtUp(
            positions: { connection in
                let row = try await connection.query(Self.positionsQuery(chat), logger: self.logger)
                    .decode((Int64, Int64, Int64, Int64, Int64).self).collectAll().first
                return (row?.0, row.map { ChatPositions(($0.1, $0.2, $0.3, $0.4)) })
            },
            // No such chat on the primary: it says so.
            covers: { replica, primary in primary.map { replica?.cover(needed($0)) ?? false } ?? false },
            read: read)
    }

    /// Runs `read` on a replica that has replayed every chat of `user` as far as the primary
    /// had them when the read began, and the user's memberships as they were: the same chats,
    /// each covered (``ChatPositions/cover(_:)``). Else on the primary.
    func readChats<T: Sendable>(
        of user: UserID, read: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await readCaughtUp(
            positions: { connection in
                let rows = try await connection.query(Self.positionsQuery(chatsOf: user), logger: self.logger)
                    .decode((Int64, Int64, Int64, Int64, Int64, Int64).self).collectAll()
                return (
                    rows.first?.0,
                    Dictionary(
                        uniqueKeysWithValues: rows.map { (ChatID($0.1), ChatPositions(($0.2, $0.3, $0.4, $0.5))) })
                )
            },
            covers: { replica, primary in
                replica.count == primary.count
                    && primary.allSatisfy { chat, positions in replica[chat]?.cover(positions) ?? false }
            },
            read: read)
    }

    /// Runs `read`, which has no positions to compare, on a replica whose last check found the
    /// request's position (``ReadScope``) replayed, else on the primary.
    func readIfReplayed<T: Sendable>(
        _ read: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws
        -> T
    {
        guard let replicas, let replica = replicas.pick(), let requestPosition = ReadScope.current?.primaryPosition,
            replica.hasReplayed(requestPosition), let value = try await onReplica(replica, of: replicas, read)
        else { return try await readOnPrimary(read) }
        replica.servedARead()
        return value
    }

    /// What a replica read brought: the value, and unless the replica had replayed the
    /// request's position, the positions to judge it by.
    private struct ReplicaRead<Positions: Sendable, T: Sendable>: Sendable {
        var value: T
        var check: (replica: Positions, primary: Result<Positions, any Error>)?
    }

    /// Runs `read` on a replica in rotation that has everything the client had seen when the
    /// read began, else on the primary.
    ///
    /// A replica has it when it has replayed the primary's WAL position that the request's
    /// session check noted (``ReadScope``): known from its last check, or found by the read's
    /// first statement. Otherwise (it is behind the request, or the read is a WebSocket's) its
    /// `positions` must `cover` the primary's, which are read while the replica runs `read`.
    /// Read after the read began, the primary's positions are at least as far as anything the
    /// client had seen by then; a replica only moves forward, so `read`, after its positions,
    /// sees at least as much as they say.
    /// - Parameter positions: a statement that returns the WAL position a replica has replayed
    ///   (nil on the primary, or when it returned no row) and the positions of what is read.
    private func readCaughtUp<Positions: Sendable, T: Sendable>(
        positions: @escaping @Sendable (PostgresConnection) async throws -> (replayed: Int64?, Positions),
        covers: @escaping @Sendable (_ replica: Positions, _ primary: Positions) -> Bool,
        read: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        guard let replicas, let replica = replicas.pick() else { return try await readOnPrimary(read) }
        let requestPosition = ReadScope.current?.primaryPosition
        let fromReplica = try await onReplica(replica, of: replicas) { connection -> ReplicaRead<Positions, T> in
            if let requestPosition, replica.hasReplayed(requestPosition) {
                return ReplicaRead(value: try await read(connection))
            }
            let (replayed, replicaPositions) = try await positions(connection)
            if let replayed, let requestPosition, replayed >= requestPosition {
                replica.replayed(replayed)
                return ReplicaRead(value: try await read(connection))
            }
            async let primaryPositions = self.primaryPositions(positions)
            let value = try await read(connection)
            return ReplicaRead(value: value, check: (replicaPositions, await primaryPositions))
        }
        guard let fromReplica else { return try await readOnPrimary(read) }
        if let check = fromReplica.check {
            replicas.checkedPositionsOnThePrimary()
            guard covers(check.replica, try check.primary.get()) else { return try await readOnPrimary(read) }
        }
        replica.servedARead()
        return fromReplica.value
    }

    /// Runs `body` on `replica`; nil when it failed, which takes the replica out of rotation.
    /// Whatever the replica threw, a CancellationError of the driver's included, the caller
    /// still wants its read: only the caller's own cancellation is rethrown.
    private func onReplica<T: Sendable>(
        _ replica: ReplicaSet.Replica, of replicas: ReplicaSet,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T? {
        do {
            return try await withConnection(on: replica.client, limits: replicas.settings.waitLimits, body)
        } catch  where Task.isCancelled {
            throw CancellationError()
        } catch {
            takeOutOfRotation(replica, because: "a read failed: \(Self.describe(error))")
            return nil
        }
    }

    private func primaryPositions<Positions: Sendable>(
        _ positions: @escaping @Sendable (PostgresConnection) async throws -> (replayed: Int64?, Positions)
    ) async -> Result<Positions, any Error> {
        do {
            return .success(try await withConnection { try await positions($0).1 })
        } catch {
            return .failure(mapError(error))
        }
    }

    /// Runs a query that reads `chat`, and decodes every row: ``readChat(_:needing:read:)``.
    func fetch<each Column: PostgresDecodable & Sendable>(
        _ query: PostgresQuery, as types: (repeat each Column).Type, ofChat chat: ChatID,
        needing needed: @escaping @Sendable (ChatPositions) -> ChatPositions
    ) async throws -> [(repeat each Column)] {
        try await readChat(chat, needing: needed) { connection in
            try await connection.query(query, logger: self.logger).decode(types).collectAll()
        }
    }

    /// Runs a query that reads the chats of `user`, and decodes every row:
    /// ``readChats(of:read:)``.
    func fetch<each Column: PostgresDecodable & Sendable>(
        ofChatsOf user: UserID, _ query: PostgresQuery, as types: (repeat each Column).Type
    ) async throws -> [(repeat each Column)] {
        try await readChats(of: user) { connection in
            try await connection.query(query, logger: self.logger).decode(types).collectAll()
        }
    }

    /// Runs a query that reads the messages of `scope`, and decodes every row: a replica must
    /// have them, with their edits and deletions, as the primary had them.
    func fetch<each Column: PostgresDecodable & Sendable>(
        ofChatsIn scope: SearchScope, _ query: PostgresQuery, as types: (repeat each Column).Type
    ) async throws -> [(repeat each Column)] {
        switch scope {
        case .chatsOf(let user):
            try await fetch(ofChatsOf: user, query, as: types)
        case .chat(let chat):
            try await fetch(query, as: types, ofChat: chat) {
                ChatPositions(lastSeq: $0.lastSeq, lastUpdate: $0.lastUpdate)
            }
        }
    }

    private func readOnPrimary<T: Sendable>(
        _ read: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        replicas?.primaryServedARead()
        do {
            return try await withConnection(read)
        } catch {
            throw mapError(error)
        }
    }

    /// The ``ChatPositions`` of every chat `user` is a member of, a row each with its id,
    /// after ``replayedColumn``.
    private static func positionsQuery(chatsOf user: UserID) -> PostgresQuery {
        """
        SELECT \(unescaped: replayedColumn), c.id, c.last_seq, c.last_update,
               COALESCE((SELECT max(e.id) FROM membership_events e WHERE e.chat_id = c.id), 0),
               COALESCE((SELECT sum(o.read_seq) FROM group_members o WHERE o.chat_id = c.id), 0)::int8
        FROM group_members me JOIN chats c ON c.id = me.chat_id
        WHERE me.user_id = \(user.rawValue)
        """
    }

    /// How far a replica has replayed the WAL as the statement runs; 0 on the primary.
    private static let replayedColumn = "COALESCE((pg_last_wal_replay_lsn() - '0/0')::int8, 0)"

    /// The chat's ``ChatPositions`` after ``replayedColumn``: one row, from the chat's own rows
    /// and indexes.
    private static func positionsQuery(_ chat: ChatID) -> PostgresQuery {
        """
        SELECT \(unescaped: replayedColumn), last_seq, last_update,
               COALESCE((SELECT max(id) FROM membership_events WHERE chat_id = \(chat.rawValue)), 0),
               COALESCE((SELECT sum(read_seq) FROM group_members WHERE chat_id = \(chat.rawValue)), 0)::int8
        FROM chats WHERE id = \(chat.rawValue)
        """
    }

    private func takeOutOfRotation(_ replica: ReplicaSet.Replica, because reason: String) {
        if let change = replica.checked(lag: nil, outOfRotationBecause: reason) {
            logger.warning("Read replica \(change)", metadata: ["replica": "\(replica.name)"])
        }
    }

    /// Checks every replica each ``ReplicaSet/Settings/checkInterval`` until cancelled: one
    /// that answers, is still a standby and lags the primary by at most
    /// ``ReplicaSet/Settings/maxLag`` is in rotation; any other is out until it is all three.
    func checkReplicas() async {
        guard let replicas else { return }
        while !Task.isCancelled {
            do {
                let position = try await fetch("SELECT (pg_current_wal_lsn() - '0/0')::int8", as: Int64.self)
                replicas.primaryWasAt(position.first ?? 0, at: .now)
            } catch {
                // The primary is away: the replicas keep their state until it answers again.
            }
            await withTaskGroup { group in
                for replica in replicas.replicas {
                    group.addTask { await self.check(replica, of: replicas) }
                }
            }
            try? await Task.sleep(for: replicas.settings.checkInterval)
        }
    }

    private func check(_ replica: ReplicaSet.Replica, of replicas: ReplicaSet) async {
        var lag: Duration?
        var reason: String?
        do {
            let row = try await withConnection(on: replica.client, limits: replicas.settings.checkLimits) {
                connection in
                try await connection.query(
                    "SELECT pg_is_in_recovery(), COALESCE((pg_last_wal_replay_lsn() - '0/0')::int8, 0)",
                    logger: self.logger
                ).decode((Bool, Int64).self).collectAll().first
            }
            if let row, row.0 {
                replica.replayed(row.1)
                let measured = replicas.lag(ofReplayed: row.1, now: .now)
                lag = measured
                if measured > replicas.settings.maxLag { reason = "it lags the primary by \(measured)" }
            } else {
                reason = "it is not a standby (promoted?)"
            }
        } catch  where Task.isCancelled {
            return
        } catch {
            reason = "its check failed: \(Self.describe(error))"
        }
        if let change = replica.checked(lag: lag, outOfRotationBecause: reason) {
            if reason == nil {
                logger.notice("Read replica \(change)", metadata: ["replica": "\(replica.name)"])
            } else {
                logger.warning("Read replica \(change)", metadata: ["replica": "\(replica.name)"])
            }
        }
    }
}

extension Int64 {
    /// `self + count`, or `Int64.max` past it: positions come from clients.
    func clampedAdding(_ count: Int) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(Int64(count))
        return overflow ? .max : sum
    }
}
