import ChatProtocol
import ChatServer
import Foundation
import Histogram
import Logging

/// A load scenario: what it models is in each type's documentation and in
/// docs/benchmarks.md.
public protocol Scenario: Sendable {
    /// The name on the command line and in reports.
    static var name: String { get }
    /// The settings, for the report.
    var parameters: [String: String] { get }
    /// Sets the scenario up on the server, runs it and reports.
    func run(_ options: SimulationOptions) async throws -> Report
}

/// `fanout`: one group chat, every member connected once, some of them sending. A busy group
/// is the broadcast core's hardest case: each message is stored once and delivered to every
/// member.
///
/// With slow consumers, that many members who do not send stop reading for the measured
/// window: the server must close them at its outbox limit while the others go on unhindered;
/// then they read again, find themselves closed, reconnect and recover everything (through
/// `/history` when too far behind to `resume`). That needs `rideOut`.
public struct Fanout: Scenario {
    public static let name = "fanout"
    public var members = 50
    public var senders = 10
    public var pace = Pace.window(10)
    public var messageSize = 100
    public var slowConsumers = 0

    public init() {}

    public var parameters: [String: String] {
        [
            "users": "\(members)", "senders": "\(senders)", "pace": pace.description, "message_size": "\(messageSize)",
            "slow_consumers": "\(slowConsumers)",
        ]
    }

    public func run(_ options: SimulationOptions) async throws -> Report {
        guard members >= 2 else { throw SimulationError("fanout needs at least 2 users") }
        guard (1...members).contains(senders) else { throw SimulationError("senders must be between 1 and the users") }
        guard (0...(members - senders)).contains(slowConsumers) else {
            throw SimulationError("slow consumers must be between 0 and the users who do not send")
        }
        guard slowConsumers == 0 || options.rideOut else {
            throw SimulationError("slow consumers are closed by the server: they need --ride-out to reconnect")
        }
        try pace.validate()
        return try await Simulation.with(options) { simulation in
            let users = try await simulation.registerUsers(members)
            let chat = try await simulation.createChat(.group, named: "fanout \(simulation.run)", members: users)
            let roles = users.enumerated().map { index, user in
                let sending = DeviceRole.Sending(sender: index, chats: [chat], pace: pace, messageSize: messageSize)
                return (
                    user,
                    DeviceRole(
                        sending: index < senders ? sending : nil, stallsWhileMeasuring: index >= members - slowConsumers
                    )
                )
            }
            return try await simulation.traffic(
                Self.name, parameters: parameters, roles: roles,
                alongside: { devices, _ in
                    for device in devices where device.role.stallsWhileMeasuring { device.stallReading() }
                    return [:]
                },
                afterMeasuring: { devices in
                    for device in devices where device.role.stallsWhileMeasuring { await device.readAgain() }
                })
        }
    }
}

/// `pairs`: many private chats, both members connected and talking. Many small rooms: the
/// cost per message when each is delivered once, and how sends into different chats go on
/// in parallel.
public struct Pairs: Scenario {
    public static let name = "pairs"
    public var chats = 100
    public var pace = Pace.window(1)
    public var messageSize = 100

    public init() {}

    public var parameters: [String: String] {
        ["chats": "\(chats)", "users": "\(chats * 2)", "pace": pace.description, "message_size": "\(messageSize)"]
    }

    public func run(_ options: SimulationOptions) async throws -> Report {
        guard chats >= 1 else { throw SimulationError("pairs needs at least 1 chat") }
        try pace.validate()
        return try await Simulation.with(options) { simulation in
            let users = try await simulation.registerUsers(chats * 2)
            let pairs = try await simulation.concurrently(Array(0..<chats)) { index in
                try await simulation.createChat(
                    .private, named: "pair \(index)", members: [users[2 * index], users[2 * index + 1]])
            }
            let roles = users.enumerated().map { index, user in
                let sending = DeviceRole.Sending(
                    sender: index, chats: [pairs[index / 2]], pace: pace, messageSize: messageSize)
                return (user, DeviceRole(sending: sending))
            }
            return try await simulation.traffic(Self.name, parameters: parameters, roles: roles)
        }
    }
}

/// `mixed`: everyday use. Every user is in one group and one private chat, sends to them in
/// turn at a modest rate with `typing` first, and marks what arrives as read once a second per
/// chat; meanwhile history pages are read, messages are edited, deleted and searched, and
/// devices drop and reconnect with `resume`. The check adds that every device ends with every changed
/// message in the server's final state.
public struct Mixed: Scenario {
    public static let name = "mixed"
    public var users = 200
    public var groupSize = 20
    /// Sends a second per user.
    public var rate = 1.0
    public var messageSize = 100
    public var historyReadsPerSecond = 10.0
    public var reconnectsPerSecond = 1.0
    /// Messages edited or deleted a second.
    public var changesPerSecond = 2.0
    /// The share of the changes that are deletions.
    public var deleteShare = 0.25
    /// Searches a second.
    public var searchesPerSecond = 2.0

    public init() {}

    public var parameters: [String: String] {
        [
            "users": "\(users)", "group_size": "\(groupSize)", "rate": format(rate), "message_size": "\(messageSize)",
            "history_reads_per_second": format(historyReadsPerSecond),
            "reconnects_per_second": format(reconnectsPerSecond), "changes_per_second": format(changesPerSecond),
            "delete_share": format(deleteShare), "searches_per_second": format(searchesPerSecond),
        ]
    }

    public func run(_ options: SimulationOptions) async throws -> Report {
        guard users >= 2, users.isMultiple(of: 2) else { throw SimulationError("mixed needs an even number of users") }
        guard groupSize >= 2 else { throw SimulationError("the group size must be at least 2") }
        try Pace.rate(rate).validate()
        guard changesPerSecond >= 0, (0...1).contains(deleteShare), searchesPerSecond >= 0 else {
            throw SimulationError("changes and searches must be 0 or more a second, the delete share from 0 to 1")
        }
        return try await Simulation.with(options) { simulation in
            let accounts = try await simulation.registerUsers(users)
            let groups = try await simulation.concurrently(Array(stride(from: 0, to: users, by: groupSize))) { first in
                try await simulation.createChat(
                    .group, named: "group \(first / groupSize)",
                    members: Array(accounts[first..<min(first + groupSize, users)]))
            }
            let pairs = try await simulation.concurrently(Array(0..<users / 2)) { index in
                try await simulation.createChat(
                    .private, named: "pair \(index)", members: [accounts[2 * index], accounts[2 * index + 1]])
            }
            let chatsOfUser = (0..<users).map { [groups[$0 / groupSize], pairs[$0 / 2]] }
            let roles = accounts.enumerated().map { index, user in
                let sending = DeviceRole.Sending(
                    sender: index, chats: chatsOfUser[index], pace: .rate(rate), messageSize: messageSize, types: true)
                return (user, DeviceRole(sending: sending, readInterval: 1_000_000_000))
            }
            let changes = MessageChanges()
            return try await simulation.traffic(Self.name, parameters: parameters, roles: roles, changes: changes) {
                devices, end in
                async let history = simulation.readHistory(
                    chatsOfUser: chatsOfUser, devices: devices, perSecond: historyReadsPerSecond, until: end)
                async let reconnects = simulation.churn(devices, perSecond: reconnectsPerSecond, until: end)
                async let changed = simulation.changeMessages(
                    changes, devices: devices, chatsOfUser: chatsOfUser, perSecond: changesPerSecond,
                    deleteShare: deleteShare, until: end)
                async let searches = simulation.searchMessages(
                    devices: devices, chatsOfUser: chatsOfUser, perSecond: searchesPerSecond, until: end)
                return await [history, reconnects, changed, searches].reduce(into: [:]) { all, part in
                    all.merge(part) { first, _ in first }
                }
            }
        }
    }
}

/// `history`: one chat filled with many messages through the server's own store (one
/// statement per 100,000 messages), then `/history` pages read one at a time at the start,
/// the middle and the end, by offset and by cursor. Shows whether paging deep into a long
/// chat costs more than reading its newest page.
public struct HistoryDepths: Scenario {
    public static let name = "history"
    public var messages = 100_000
    public var pageSize = 100
    /// Timed requests per depth (after 10 untimed ones).
    public var requests = 200
    /// The server's database, which the chat is filled through.
    public var database: DatabaseLocation

    public init(database: DatabaseLocation) {
        self.database = database
    }

    public var parameters: [String: String] {
        ["messages": "\(messages)", "page_size": "\(pageSize)", "requests": "\(requests)", "database": "\(database)"]
    }

    public func run(_ options: SimulationOptions) async throws -> Report {
        guard messages >= 2 * pageSize, (1...1000).contains(pageSize) else {
            throw SimulationError("history needs a page size of 1–1000 and at least two pages of messages")
        }
        guard requests >= 1 else { throw SimulationError("requests must be at least 1") }
        return try await Simulation.with(options) { simulation in
            let user = try await simulation.registerUsers(1)[0]
            let chat = try await simulation.createChat(.group, named: "history \(simulation.run)", members: [user])
            let fillStart = ContinuousClock.now
            try await simulation.bulkFill([chat], with: messages, from: user, through: database, log: options.log)
            let fillSeconds = (ContinuousClock.now - fillStart).seconds
            let queries = [
                "offset=0", "offset=\(messages / 2)", "offset=\(messages - pageSize)",
                "before_seq=\(messages + 1)", "before_seq=\(messages / 2 + 1)", "before_seq=\(pageSize + 1)",
            ].map { "\($0)&limit=\(pageSize)" }
            var depths: [Report.HistoryDepth] = []
            let measurement = try await simulation.measure {
                for query in queries {
                    depths.append(
                        .init(query: query, latency: try await timeHistory(simulation, chat, query, as: user)))
                }
            }
            var report = simulation.report(Self.name, parameters: parameters, measurement: measurement, devices: 0)
            report.history = depths
            report.notes.append("filled \(messages) messages in \(format(fillSeconds)) s")
            let shallow = depths[0].latency.p50
            let deep = depths[2].latency.p50
            if shallow > 0 { report.notes.append("p50 at the deepest offset is \(format(deep / shallow))× offset 0") }
            let requestsPerSecond = Double(queries.count * requests) / max(measurement.seconds, 1e-9)
            report.judge(
                latency: "history", p99: depths.map(\.latency.p99).max(), rate: "history requests/s",
                perSecond: requestsPerSecond, options: options)
            return report
        }
    }

    private func timeHistory(
        _ simulation: Simulation, _ chat: ChatID, _ query: String, as user: ServerAPI.User
    )
        async throws -> Report.LatencySummary
    {
        var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        for attempt in 0..<(10 + requests) {
            let start = monotonicNanoseconds()
            let count = try await simulation.api.history(of: chat, query: query, as: user)
            let elapsed = (monotonicNanoseconds() - start) / 1000
            guard count == pageSize else {
                throw SimulationError("history \(query) returned \(count) messages, expected \(pageSize)")
            }
            if attempt >= 10 { _ = histogram.record(elapsed) }
        }
        return Report.LatencySummary(microseconds: histogram)
    }
}

/// `connections`: many idle, authenticated connections (several per user, as devices are),
/// spread over several loopback source addresses when one address's ports do not suffice.
/// Reports how fast they connect and the server's memory per connection.
public struct IdleConnections: Scenario {
    public static let name = "connections"
    public var connections = 1000
    /// Connections per user; the server allows `CHAT_WS_CONNECTIONS_PER_USER` (10).
    public var perUser = 10

    public init() {}

    public var parameters: [String: String] { ["connections": "\(connections)", "per_user": "\(perUser)"] }

    public func run(_ options: SimulationOptions) async throws -> Report {
        guard connections >= 1, perUser >= 1 else { throw SimulationError("connections and per-user must be positive") }
        return try await Simulation.with(options) { simulation in
            let users = try await simulation.registerUsers((connections + perUser - 1) / perUser)
            let devices = simulation.makeDevices((0..<connections).map { (users[$0 % users.count], DeviceRole()) })
            var connect: Simulation.ConnectOutcome?
            let measurement = await simulation.measure {
                connect = await simulation.connectAll(devices)
                // Let the server's allocations settle before sampling its memory.
                try? await Task.sleep(for: .seconds(2))
            }
            options.log("holding \(connections) connections for \(options.duration)")
            try await Task.sleep(for: options.duration)
            let failures = simulation.failures(of: devices)
            _ = await simulation.finish(devices)
            var report = simulation.report(
                Self.name, parameters: parameters, measurement: measurement, devices: connections, connect: connect,
                failures: failures)
            let connected = connect?.connected ?? 0
            let growth = measurement.server.first.map { Double($0.after.rssBytes) - Double($0.before.rssBytes) }
            report.connections = .init(
                connected: connected, serverRSSBytesPerConnection: growth.map { $0 / Double(max(connected, 1)) },
                connectionsPerSecond: Double(connected) / max(connect?.seconds ?? 0, 1e-9))
            report.judge(
                latency: "connect", p99: report.latencies["connect"]?.p99, rate: "connections/s",
                perSecond: report.connections?.connectionsPerSecond, options: options)
            return report
        }
    }
}

/// `reconnect`: users in group chats, one sender per chat; every connection is dropped at
/// once (as when a load balancer or the network fails), then each device reconnects after a
/// random delay with exponential backoff, `resume`s its chats and repeats its unanswered
/// sends. Verifies that nothing sent meanwhile is missing or repeated and reports how long
/// recovering took.
public struct Reconnect: Scenario {
    public static let name = "reconnect"
    public var users = 1000
    public var chatSize = 50
    /// Sends a second per sender (one per chat).
    public var rate = 2.0
    public var messageSize = 100
    /// Devices wait a random time up to this long before their first reconnect attempt.
    public var jitter = Duration.seconds(1)

    public init() {}

    public var parameters: [String: String] {
        [
            "users": "\(users)", "chat_size": "\(chatSize)", "rate": format(rate), "message_size": "\(messageSize)",
            "jitter_ms": "\(Int(jitter.seconds * 1000))",
        ]
    }

    public func run(_ options: SimulationOptions) async throws -> Report {
        guard users >= 2, chatSize >= 2 else { throw SimulationError("reconnect needs at least 2 users per chat") }
        try Pace.rate(rate).validate()
        return try await Simulation.with(options) { simulation in
            let accounts = try await simulation.registerUsers(users)
            let firsts = Array(stride(from: 0, to: users, by: chatSize))
            let chats = try await simulation.concurrently(firsts) { first in
                try await simulation.createChat(
                    .group, named: "reconnect \(first / chatSize)",
                    members: Array(accounts[first..<min(first + chatSize, users)]))
            }
            let roles = accounts.enumerated().map { index, user in
                let sending = DeviceRole.Sending(
                    sender: index, chats: [chats[index / chatSize]], pace: .rate(rate), messageSize: messageSize)
                return (user, DeviceRole(sending: index.isMultiple(of: chatSize) ? sending : nil))
            }
            let devices = simulation.makeDevices(roles)
            let connect = await simulation.connectAll(devices)
            guard connect.failures.isEmpty else {
                throw SimulationError("devices failed to connect: \(connect.failures)")
            }
            simulation.control.enter(.warmup)
            for device in devices { device.startSending() }
            try await Task.sleep(for: options.warmup)
            var recovery = Histogram<UInt64>(
                highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            var attempts = 0
            var recoveryFailures: [String: Int] = [:]
            var allRecovered = 0.0
            let measurement = try await simulation.measure {
                options.log("dropping \(devices.count) connections")
                await withTaskGroup(of: Void.self) { group in
                    for device in devices { group.addTask { await device.drop() } }
                }
                let droppedAt = ContinuousClock.now
                let outcomes = await withTaskGroup(of: Simulation.Recovered.self) { group in
                    for device in devices {
                        group.addTask {
                            await simulation.recover(device, of: devices.count, jitter: jitter, since: droppedAt)
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                allRecovered = (ContinuousClock.now - droppedAt).seconds
                for outcome in outcomes {
                    attempts += outcome.attempts
                    if let seconds = outcome.seconds { _ = recovery.record(UInt64(seconds * 1e6)) }
                    if let failure = outcome.failure { recoveryFailures[failure, default: 0] += 1 }
                }
                options.log("recovered in \(format(allRecovered)) s; sending for \(options.duration) more")
                try await Task.sleep(for: options.duration)
            }
            await simulation.settle(devices)
            var failures = simulation.failures(of: devices)
            failures.merge(recoveryFailures, uniquingKeysWith: +)
            let observations = await simulation.finish(devices)
            var report = simulation.report(
                Self.name, parameters: parameters, measurement: measurement, devices: devices.count,
                observations: observations, connect: connect, failures: failures)
            if recovery.totalCount > 0 { report.latencies["recover"] = .init(microseconds: recovery) }
            report.recovery = .init(
                allRecoveredSeconds: allRecovered, attempts: attempts, recovered: Int(recovery.totalCount))
            report.judge(
                latency: "recover", p99: report.latencies["recover"]?.p99, rate: "recovered devices/s",
                perSecond: Double(recovery.totalCount) / max(allRecovered, 1e-9), options: options)
            return report
        }
    }
}

extension Pace: CustomStringConvertible {
    public var description: String {
        switch self {
        case .window(let size): "window \(size)"
        case .rate(let rate): "rate \(format(rate))/s"
        }
    }

    func validate() throws {
        switch self {
        case .window(let size) where size < 1: throw SimulationError("the window must be at least 1")
        case .rate(let rate) where !(rate > 0 && rate <= 100_000):
            throw SimulationError("the rate must be above 0 and at most 100000 a second")
        default: return
        }
    }
}
