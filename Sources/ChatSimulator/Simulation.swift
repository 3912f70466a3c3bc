import AsyncHTTPClient
import ChatProtocol
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Settings every scenario shares.
public struct SimulationOptions: Sendable {
    /// The server's base URL, or several separated by commas: nodes of one deployment,
    /// which devices are spread over in turn (REST calls go to the first).
    public var url: String
    public var warmup: Duration = .seconds(3)
    public var duration: Duration = .seconds(20)
    /// Seeds the simulator's random choices (jitter, churn, history queries).
    public var seed: UInt64 = .random(in: 0...UInt64.max)
    /// New connections a second while connecting devices (0: as fast as possible).
    public var connectRate: Double = 2000
    /// Processes whose CPU time and memory the report covers: the chat server first, then
    /// for instance PostgreSQL's postmaster.
    public var serverPIDs: [Int32] = []
    /// Event loop threads of the simulator.
    public var threads = System.coreCount
    /// Loopback source addresses to spread connections over (nil: one per 20,000).
    public var sourceAddresses: Int?
    public var maxP99Milliseconds: Double?
    public var minRate: Double?
    /// Devices reconnect (with backoff, then `resume`) whenever a connection ends unasked, and
    /// repeat sends refused with `storage_unavailable`, as real clients do: for runs during
    /// which the server or its database is made to fail.
    public var rideOut = false
    /// How long to wait for the server to be ready before the run starts.
    public var serverWait: Duration = .seconds(10)
    /// Whether a run the server throttled (``Report/Throttling``) may still pass.
    public var allowThrottling = false
    /// For senders paced by a rate: this many seconds into the measured window, each switches
    /// to this rate (an overload that ends, say). The report then splits the ack latencies at
    /// the switch and records the server's memory there.
    public var rateChange: (after: Duration, rate: Double)?
    /// Where progress lines go (the CLI prints them to standard error).
    public var log: @Sendable (String) -> Void = { _ in }
    /// Where the live progress line goes once a second while a sending run warms up and
    /// measures (the CLI rewrites one line of a terminal); nil shows none.
    public var progress: (@Sendable (String) -> Void)?

    public init(url: String) {
        self.url = url
    }
}

/// One run of a scenario: the servers' endpoints, the devices' event loops, the REST client,
/// the run's phase, and the steps scenarios are made of.
final class Simulation: Sendable {
    let options: SimulationOptions
    /// The nodes of the server; device `i` connects to node `i % count` first.
    let endpoints: [Endpoint]
    let api: ServerAPI
    let control = RunControl()
    /// This run's id in user names and client ids.
    let run: UInt32
    let group: MultiThreadedEventLoopGroup
    let startedAt = Date()
    /// Devices made so far (for spreading reconnects over source addresses).
    let devicesMade = Atomic<Int>(0)
    /// Lost connections being recovered (`rideOut`).
    let recovering = Atomic<Int>(0)
    /// How the recoveries of lost connections went (`rideOut`).
    let recoveries = Mutex(RecoveryLog())

    static let password = "chatsim-password"

    private init(
        options: SimulationOptions, endpoints: [Endpoint], client: HTTPClient, group: MultiThreadedEventLoopGroup
    ) {
        self.options = options
        self.endpoints = endpoints
        self.api = ServerAPI(baseURL: endpoints[0].baseURL, client: client)
        self.group = group
        self.run = UInt32.random(in: 100_000...UInt32.max)
    }

    /// Runs `body` with a simulation against `options.url`, then shuts its resources down.
    static func with<T: Sendable>(
        _ options: SimulationOptions, _ body: (Simulation) async throws -> T
    ) async throws -> T {
        let endpoints = try Endpoint.list(options.url)
        ProcessStats.raiseOpenFileLimit()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 32
        configuration.timeout.connect = .seconds(3)
        let client = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)
        let simulation = Simulation(options: options, endpoints: endpoints, client: client, group: group)
        do {
            try await simulation.checkServer()
            let result = try await body(simulation)
            try await client.shutdown()
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await client.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    // MARK: Setting up

    /// Waits up to `options.serverWait` for every node to answer `/health/ready` with 200 (a
    /// server started a moment ago is still opening its database), then fails clearly.
    func checkServer() async throws {
        let deadline = ContinuousClock.now + options.serverWait
        for endpoint in endpoints {
            let node = ServerAPI(baseURL: endpoint.baseURL, client: api.client)
            while true {
                let problem: String
                do {
                    let reply = try await node.send(.GET, "/health/ready")
                    if reply.status == .ok { break }
                    problem = "the server at \(endpoint.baseURL) is not ready: \(reply.status)"
                } catch {
                    problem = "cannot reach the server at \(endpoint.baseURL): \(error)"
                }
                guard ContinuousClock.now < deadline else { throw SimulationError(problem) }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// The node `device` connects to: its own in turn, the next one after each failed attempt.
    func endpoint(for device: Device, attempt: Int = 0) -> Endpoint {
        endpoints[(device.node + attempt) % endpoints.count]
    }

    /// Registers and logs in `count` new users, named after the run.
    func registerUsers(_ count: Int) async throws -> [ServerAPI.User] {
        options.log("registering \(count) users")
        let api = api
        let run = run
        return try await concurrently(Array(0..<count)) { index in
            try await api.register("sim\(run)-\(index)", password: Self.password)
        }
    }

    /// Creates a chat owned by `members[0]` with every member in it.
    func createChat(_ type: ChatType, named name: String, members: [ServerAPI.User]) async throws -> ChatID {
        let chat = try await api.createChat(named: name, type: type, as: members[0])
        let api = api
        _ = try await concurrently(Array(members.dropFirst())) { try await api.addUser($0, to: chat, as: members[0]) }
        return chat
    }

    /// Runs `body` for every element, at most `width` at a time, and returns the results in order.
    func concurrently<Element: Sendable, Result: Sendable>(
        _ elements: [Element], width: Int = 16, _ body: @escaping @Sendable (Element) async throws -> Result
    ) async throws -> [Result] {
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var results: [Result?] = Array(repeating: nil, count: elements.count)
            for (index, element) in elements.enumerated() {
                if index >= width, let (done, result) = try await group.next() { results[done] = result }
                group.addTask { (index, try await body(element)) }
            }
            for try await (done, result) in group { results[done] = result }
            return results.map { $0! }
        }
    }

    /// One device per role, spread over the event loops.
    func makeDevices(_ roles: [(user: ServerAPI.User, role: DeviceRole)]) -> [Device] {
        devicesMade.add(roles.count, ordering: .relaxed)
        var lost: (@Sendable (Device) -> Void)?
        if options.rideOut { lost = { device in self.reconnectLost(device) } }
        let nodeCount = endpoints.count
        var senderNodes: [Int: Int] = [:]
        for (index, entry) in roles.enumerated() {
            if let sender = entry.role.sending?.sender { senderNodes[sender] = index % nodeCount }
        }
        return roles.enumerated().map { index, entry in
            Device(
                index: index, user: entry.user, role: entry.role, run: run, control: control,
                eventLoop: group.next(), node: index % nodeCount, senderNodes: nodeCount > 1 ? senderNodes : [:],
                lost: lost)
        }
    }

    // MARK: Connecting

    struct ConnectOutcome {
        var seconds: Double
        /// Microseconds from the first byte to `ready`, per connected device.
        var latency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var failures: [String: Int] = [:]
        var connected = 0
    }

    /// Connects every device, at most `options.connectRate` new connections a second and
    /// 256 at a time.
    func connectAll(_ devices: [Device]) async -> ConnectOutcome {
        options.log("connecting \(devices.count) devices")
        let start = ContinuousClock.now
        let interval = options.connectRate > 0 ? Duration.seconds(1 / options.connectRate) : .zero
        var outcome = ConnectOutcome(seconds: 0)
        await withTaskGroup(of: Result<UInt64, SimulationError>.self) { group in
            func collect(_ result: Result<UInt64, SimulationError>) {
                switch result {
                case .success(let microseconds):
                    outcome.connected += 1
                    _ = outcome.latency.record(microseconds)
                case .failure(let error):
                    outcome.failures[error.description, default: 0] += 1
                }
            }
            for (index, device) in devices.enumerated() {
                if index >= 256, let result = await group.next() { collect(result) }
                let due = start + interval * index
                if due > .now { try? await Task.sleep(until: due, clock: .continuous) }
                let source = sourceAddress(for: index, of: devices.count)
                group.addTask {
                    let began = monotonicNanoseconds()
                    do {
                        try await device.connect(to: self.endpoint(for: device), from: source)
                        return .success((monotonicNanoseconds() - began) / 1000)
                    } catch {
                        return .failure(SimulationError("connecting: \(error)"))
                    }
                }
            }
            for await result in group { collect(result) }
        }
        outcome.seconds = (ContinuousClock.now - start).seconds
        return outcome
    }

    /// The source address of the `index`th of `total` connections: 127.0.0.1, 127.0.0.2, ...
    /// in turn when the server is on loopback and more than one address is wanted, since one
    /// address has only some 28,000 ephemeral ports.
    func sourceAddress(for index: Int, of total: Int) -> SocketAddress? {
        let count = options.sourceAddresses ?? (total + 19_999) / 20_000
        guard endpoints.allSatisfy(\.isIPv4Loopback), count > 1 else { return nil }
        return try? SocketAddress(ipAddress: "127.0.0.\(1 + index % min(count, 254))", port: 0)
    }

    // MARK: Measuring

    /// What the measured window cost.
    struct Measurement {
        var seconds: Double
        var server: [(before: ProcessStats.Sample, after: ProcessStats.Sample)]
        var simulatorCPUSeconds: Double
    }

    /// Runs `body` as the measured window: the phase is `measuring` meanwhile, and the server
    /// processes and the simulator are sampled on either side.
    func measure(_ body: () async throws -> Void) async rethrows -> Measurement {
        options.log("measuring")
        let before = ProcessStats.sample(options.serverPIDs)
        let ownBefore = ProcessStats.ownCPUSeconds()
        let start = ContinuousClock.now
        control.enter(.measuring)
        try await body()
        control.enter(.draining)
        let seconds = (ContinuousClock.now - start).seconds
        let after = ProcessStats.sample(options.serverPIDs)
        let server = before.compactMap { first in after.first { $0.pid == first.pid }.map { (first, $0) } }
        return Measurement(
            seconds: seconds, server: server, simulatorCPUSeconds: ProcessStats.ownCPUSeconds() - ownBefore)
    }

    /// Waits until no lost connection is still recovering, no send is unanswered and
    /// deliveries stopped for 300 ms (at most 30 s after the recoveries: longer than a server
    /// waits on PostgreSQL before it answers `storage_unavailable`, 15 s, plus a repeat).
    func settle(_ devices: [Device]) async {
        options.log("draining")
        while recovering.load(ordering: .relaxed) > 0 { try? await Task.sleep(for: .milliseconds(20)) }
        let deadline = ContinuousClock.now + .seconds(30)
        var lastReceived = -1
        var quietSince = ContinuousClock.now
        while ContinuousClock.now < deadline {
            let outstanding = devices.reduce(0) { $0 + $1.progress.outstanding.load(ordering: .relaxed) }
            let received = received(devices)
            if received != lastReceived {
                lastReceived = received
                quietSince = .now
            } else if outstanding == 0 && ContinuousClock.now - quietSince >= .milliseconds(300) {
                return
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Closes every device's connection and collects what they observed.
    func finish(_ devices: [Device]) async -> [DeviceObservations] {
        control.enter(.finished)
        await withTaskGroup(of: Void.self) { group in
            for device in devices { group.addTask { await device.close() } }
        }
        var observations: [DeviceObservations] = []
        for device in devices { observations.append(await device.observations()) }
        return observations
    }

    /// Devices whose connection ended unasked, by reason.
    func failures(of devices: [Device]) -> [String: Int] {
        var failures: [String: Int] = [:]
        for device in devices {
            if let failure = device.progress.failure.withLock({ $0 }) { failures[failure, default: 0] += 1 }
        }
        return failures
    }

    // MARK: Reporting

    /// The report of a run: rates, latencies and the checker's verdict from the devices'
    /// observations, server and simulator cost from the measurement.
    func report(
        _ scenario: String, parameters: [String: String], measurement: Measurement, devices: Int,
        observations: [DeviceObservations] = [], connect: ConnectOutcome? = nil, failures: [String: Int] = [:],
        finalVersions: [Int64: [Int64: (seq: Int64, updateSeq: Int64)]] = [:]
    ) -> Report {
        var deliveryLatency = Histogram<UInt64>(
            highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var ackLatency = deliveryLatency
        var acceptedAckLatency = deliveryLatency
        var lateLatency = deliveryLatency
        var settledAckLatency = deliveryLatency
        var late = 0
        var crossNodeLatency = deliveryLatency
        var rates = Report.Rates(
            sent: 0, stored: 0, deliveredFrames: 0, overloaded: 0, rateLimited: 0, heldBack: 0, sentPerSecond: 0,
            storedPerSecond: 0,
            deliveredFramesPerSecond: 0)
        var senders: [Int: SendLog] = [:]
        var strays = 0
        var historyCatchUps = 0
        var generationChanges = 0
        var connectionsLost = 0
        var sendsRepeated = 0
        var turnedAway = 0
        for (index, observed) in observations.enumerated() {
            deliveryLatency.add(observed.deliveryLatency)
            crossNodeLatency.add(observed.crossNodeDeliveryLatency)
            ackLatency.add(observed.ackLatency)
            acceptedAckLatency.add(observed.acceptedAckLatency)
            lateLatency.add(observed.lateLatency)
            settledAckLatency.add(observed.settledAckLatency)
            late += observed.late
            rates.overloaded += observed.sendsOverloaded
            rates.rateLimited += observed.sendsRateLimited
            rates.heldBack += observed.sendsHeldBack
            rates.sent += observed.sentWhileMeasuring
            rates.stored += observed.ackedWhileMeasuring
            rates.deliveredFrames += observed.framesWhileMeasuring
            strays += observed.strays
            historyCatchUps += observed.historyCatchUps
            generationChanges += observed.generationChanges
            connectionsLost += observed.connectionsLost
            sendsRepeated += observed.sendsRepeated
            turnedAway += observed.turnedAway
            if observed.sendLog.sent > 0 { senders[index] = observed.sendLog }
        }
        let window = max(measurement.seconds, 1e-9)
        rates.sentPerSecond = Double(rates.sent) / window
        rates.storedPerSecond = Double(rates.stored) / window
        rates.deliveredFramesPerSecond = Double(rates.deliveredFrames) / window
        var check = Checker.check(
            streams: observations.map(\.streams), senders: senders, finalVersions: finalVersions)
        check.unexpected += strays
        check.late = late

        var latencies: [String: Report.LatencySummary] = [:]
        if deliveryLatency.totalCount > 0 { latencies["send_to_delivery"] = .init(microseconds: deliveryLatency) }
        if crossNodeLatency.totalCount > 0 {
            latencies["send_to_delivery_cross_node"] = .init(microseconds: crossNodeLatency)
        }
        if ackLatency.totalCount > 0 { latencies["send_to_ack"] = .init(microseconds: ackLatency) }
        if rates.overloaded > 0 || options.rateChange != nil, acceptedAckLatency.totalCount > 0 {
            latencies["accepted_send_to_ack"] = .init(microseconds: acceptedAckLatency)
        }
        if settledAckLatency.totalCount > 0 {
            latencies["settled_send_to_ack"] = .init(microseconds: settledAckLatency)
        }
        if lateLatency.totalCount > 0 { latencies["late_delivery"] = .init(microseconds: lateLatency) }
        if let connect, connect.latency.totalCount > 0 { latencies["connect"] = .init(microseconds: connect.latency) }

        var notes: [String] = []
        let simulatorCores = measurement.simulatorCPUSeconds / window
        if simulatorCores > 0.8 {
            notes.append(
                "the simulator used \(format(simulatorCores * 100))% of a core: it may have limited the rates measured")
        }
        if historyCatchUps > 0 {
            notes.append("\(historyCatchUps) chats were too far behind to resume and were caught up through /history")
        }
        if generationChanges > 0 {
            notes.append(
                "the database was restored during the run (\(generationChanges) reconnects saw a new generation): "
                    + "the devices followed their chats afresh, and what the restore lost shows as missing")
        }
        let recoveryLog = recoveries.withLock { $0 }
        let faults = Report.Faults(
            connectionsLost: connectionsLost, recovered: recoveryLog.recovered, attempts: recoveryLog.attempts,
            slowestRecoverySeconds: recoveryLog.slowest, sendsRepeated: sendsRepeated)
        if check.unanswered > 0 { notes.append("\(check.unanswered) sends were still unanswered at the end") }
        if turnedAway > 0 {
            notes.append(
                "the server turned \(turnedAway) connections away with 1013 (try again later)")
        }
        let server = measurement.server.map { before, after in
            let cpu = after.cpuSeconds - before.cpuSeconds
            return Report.ProcessUsage(
                pid: before.pid, command: before.command, cpuSeconds: cpu, cpuCores: cpu / window,
                cpuMicrosecondsPerDeliveredFrame: rates.deliveredFrames > 0
                    ? cpu * 1e6 / Double(rates.deliveredFrames) : nil,
                cpuMicrosecondsPerStoredMessage: rates.stored > 0 ? cpu * 1e6 / Double(rates.stored) : nil,
                rssBytesBefore: before.rssBytes, rssBytesAfter: after.rssBytes)
        }
        // Every refusal that was repeated is one more attempt.
        let attempts = senders.values.reduce(0) { $0 + $1.sent } + rates.overloaded + rates.rateLimited + sendsRepeated
        var refusals = [
            ErrorCode.rateLimited.rawValue: rates.rateLimited
                + check.sendErrors[ErrorCode.rateLimited.rawValue, default: 0]
        ]
        if !options.rideOut {
            refusals[ErrorCode.storageUnavailable.rawValue] =
                check.sendErrors[ErrorCode.storageUnavailable.rawValue, default: 0]
        }
        var allFailures = failures
        allFailures.merge(connect?.failures ?? [:], uniquingKeysWith: +)
        return Report(
            scenario: scenario, parameters: parameters, startedAt: startedAt, measuredSeconds: measurement.seconds,
            devices: devices, connectSeconds: connect?.seconds, deviceFailures: allFailures,
            rates: observations.isEmpty ? nil : rates, latencies: latencies, history: nil, connections: nil,
            recovery: nil, faults: options.rideOut ? faults : nil, rateChange: nil, server: server,
            simulator: .init(
                cpuSeconds: measurement.simulatorCPUSeconds, cpuCores: simulatorCores, threads: options.threads),
            check: check, thresholds: [], notes: notes,
            throttling: attempts > 0
                ? Report.Throttling(refused: refusals, attempts: attempts, allowed: options.allowThrottling) : nil)
    }
}

extension Report {
    /// Applies the command line's thresholds to the scenario's headline latency (a p99) and
    /// rate, and decides the verdict: a run the server throttled does not pass unless
    /// `options.allowThrottling`, and says why in a note.
    mutating func judge(latency: String, p99: Double?, rate: String, perSecond: Double?, options: SimulationOptions) {
        if let limit = options.maxP99Milliseconds {
            thresholds.append(
                Threshold(
                    name: "max p99 \(latency) ms", limit: limit, measured: p99, met: (p99 ?? .infinity) <= limit))
        }
        if let limit = options.minRate {
            thresholds.append(
                Threshold(name: "min \(rate)", limit: limit, measured: perSecond, met: (perSecond ?? 0) >= limit))
        }
        if let throttling, throttling.isThrottled { notes.append(throttling.explanation) }
        let sound = check.passed && deviceFailures.isEmpty && thresholds.allSatisfy(\.met)
        let throttled = throttling.map { $0.isThrottled && !$0.allowed } ?? false
        conclude(!sound ? .failed : throttled ? .throttled : .passed)
    }

    /// Sets the verdict (and `passed` with it).
    mutating func conclude(_ verdict: Verdict) {
        self.verdict = verdict
        passed = verdict == .passed
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
