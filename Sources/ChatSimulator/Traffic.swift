import ChatProtocol
import Histogram
import NIOCore
import Synchronization

extension Simulation {
    /// Work that runs alongside the measured window until `end` and reports latencies.
    typealias Alongside = @Sendable ([Device], ContinuousClock.Instant) async -> [String: Report.LatencySummary]

    /// The common course of the sending scenarios: connect, warm up, measure, drain, check.
    /// `afterMeasuring` runs between the measured window and draining. With `changes`, the
    /// check compares every device with the final state of the messages changed meanwhile.
    func traffic(
        _ scenario: String, parameters: [String: String], roles: [(user: ServerAPI.User, role: DeviceRole)],
        changes: MessageChanges? = nil, alongside: Alongside? = nil,
        afterMeasuring: (@Sendable ([Device]) async -> Void)? = nil
    ) async throws -> Report {
        let devices = makeDevices(roles)
        let connect = await connectAll(devices)
        guard connect.connected > 0 else { throw SimulationError("no device connected: \(connect.failures)") }
        control.enter(.warmup)
        async let progressShown: Void = showProgress(devices)
        for device in devices { device.startSending() }
        options.log("warming up for \(options.warmup)")
        try await Task.sleep(for: options.warmup)
        // A cold or starved server may not have stored anything yet: measure traffic, not the start.
        try await untilStored(devices, moreThan: 0)
        var extra: [String: Report.LatencySummary] = [:]
        var rateChange: Report.RateChange?
        let measurement = try await measure {
            let end = ContinuousClock.now + options.duration
            let storedBefore = stored(devices)
            if let change = options.rateChange {
                try await Task.sleep(until: .now + change.after, clock: .continuous)
                control.rateChanged()
                for device in devices { device.changeRate(to: change.rate) }
                options.log("senders switched to \(format(change.rate))/s")
                rateChange = Report.RateChange(
                    afterSeconds: change.after.seconds, rate: change.rate,
                    serverRSSBytesAtChange: ProcessStats.sample(options.serverPIDs).first?.rssBytes)
            }
            if let alongside { extra = await alongside(devices, end) }
            try await Task.sleep(until: end, clock: .continuous)
            // A window in which nothing was stored measured nothing (on a starved machine, a
            // second may pass without an ack): keep it open until something is.
            try await untilStored(devices, moreThan: storedBefore)
        }
        await progressShown
        await afterMeasuring?(devices)
        await settle(devices)
        await reconcile(devices)
        var changedMessages: [Int64: [Int64: (seq: Int64, updateSeq: Int64)]] = [:]
        if let changes { changedMessages = try await finalVersions(of: changes) }
        let failures = failures(of: devices)
        let observations = await finish(devices)
        var report = report(
            scenario, parameters: parameters, measurement: measurement, devices: devices.count,
            observations: observations, connect: connect, failures: failures, finalVersions: changedMessages)
        report.latencies.merge(extra) { first, _ in first }
        report.rateChange = rateChange
        report.judge(
            latency: "send_to_delivery", p99: report.latencies["send_to_delivery"]?.p99, rate: "delivered frames/s",
            perSecond: report.rates?.deliveredFramesPerSecond, options: options)
        if report.rates?.stored == 0 {
            report.notes.append("no message was stored while measuring")
            report.conclude(.failed)
        }
        return report
    }

    /// Tells late from lost once the run has drained: every device that has not received an
    /// acknowledged message asks for it again, with a `resume` on its connection (or, without
    /// one, from `/history`). What arrives then is late (``DeviceObservations/late``); what does
    /// not, or does not exist, stays missing and the checker counts it lost. Waits up to 10 s.
    func reconcile(_ devices: [Device]) async {
        var acknowledged: [Int64: Int64] = [:]
        for device in devices {
            for ack in await device.observations().sendLog.acks.values {
                acknowledged[ack.chatID] = max(acknowledged[ack.chatID] ?? 0, ack.seq)
            }
        }
        var asked = false
        for device in devices {
            let (missing, resumed) = await device.reconcile(upTo: acknowledged)
            guard !missing.isEmpty else { continue }
            asked = true
            if resumed { continue }
            for (chat, ranges) in missing {
                for range in ranges {
                    let page = try? await api.messages(
                        of: ChatID(chat), after: range.lowerBound - 1, limit: range.count, as: device.user)
                    await device.fill(chat, with: page ?? [])
                }
            }
        }
        guard asked else { return }
        options.log("asking again for messages not received")
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline,
            devices.contains(where: { $0.progress.resuming.load(ordering: .relaxed) > 0 })
        {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Sends of the devices acknowledged so far.
    func stored(_ devices: [Device]) -> Int {
        devices.reduce(0) { $0 + $1.progress.acked.load(ordering: .relaxed) }
    }

    /// Waits until more than `count` of the devices' sends were acknowledged, 30 s at most.
    func untilStored(_ devices: [Device], moreThan count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while stored(devices) <= count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs `step` `perSecond` times a second until `end`, its random choices seeded with
    /// `seed`, and reports the microseconds each step returns under `name` (a step that returns
    /// nil measured nothing).
    func paced(
        _ name: String, perSecond: Double, seed: UInt64, until end: ContinuousClock.Instant,
        _ step: (inout SplitMix64) async -> UInt64?
    ) async -> [String: Report.LatencySummary] {
        guard perSecond > 0 else { return [:] }
        var random = SplitMix64(seed: seed)
        var latency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var next = ContinuousClock.now
        while next < end {
            try? await Task.sleep(until: next, clock: .continuous)
            next += .seconds(1 / perSecond)
            if let microseconds = await step(&random) { _ = latency.record(microseconds) }
        }
        return latency.totalCount > 0 ? [name: .init(microseconds: latency)] : [:]
    }

    /// Reads a newest history page of a random chat of a random device's user, `perSecond`
    /// times a second until `end`.
    func readHistory(
        chatsOfUser: [[ChatID]], devices: [Device], perSecond: Double, until end: ContinuousClock.Instant
    ) async -> [String: Report.LatencySummary] {
        await paced("history", perSecond: perSecond, seed: options.seed, until: end) { random in
            let index = Int.random(in: 0..<devices.count, using: &random)
            let chat = chatsOfUser[index].randomElement(using: &random)!
            let start = monotonicNanoseconds()
            guard (try? await api.history(of: chat, query: "limit=50", as: devices[index].user)) != nil else {
                options.log("a history read failed")
                return nil
            }
            return (monotonicNanoseconds() - start) / 1000
        }
    }

    /// Drops a random non-sending device's connection and reconnects it, `perSecond` times a
    /// second until `end`.
    func churn(
        _ devices: [Device], perSecond: Double, until end: ContinuousClock.Instant
    ) async -> [String: Report.LatencySummary] {
        await paced("reconnect", perSecond: perSecond, seed: options.seed &+ 1, until: end) { random in
            let device = devices.randomElement(using: &random)!
            let start = monotonicNanoseconds()
            await device.drop()
            do {
                try await device.connect(
                    to: endpoint(for: device), from: sourceAddress(for: device.index, of: devices.count))
                try await catchUp(device)
                return (monotonicNanoseconds() - start) / 1000
            } catch {
                device.progress.failure.withLock { $0 = "reconnecting: \(error)" }
                return nil
            }
        }
    }

    /// Reconnects a device whose connection ended unasked, in the background; `settle` waits
    /// for it. Called on the device's event loop.
    func reconnectLost(_ device: Device) {
        recovering.add(1, ordering: .relaxed)
        Task {
            let outcome = await recover(
                device, of: devicesMade.load(ordering: .relaxed), jitter: .milliseconds(500), since: .now)
            recoveries.withLock { $0.add(outcome) }
            if let failure = outcome.failure { device.progress.failure.withLock { $0 = failure } }
            recovering.subtract(1, ordering: .relaxed)
        }
    }

    /// Reads from `/history` what `device` missed in chats too far behind to `resume`, 1,000
    /// messages a page, repeating pages the server cannot answer for now.
    func catchUp(_ device: Device) async throws {
        for (chat, missed) in await device.takeFarBehind() {
            var after = missed.lowerBound - 1
            var refusals = 0
            while after < missed.upperBound {
                let page: [MessagePayload]
                do {
                    page = try await api.messages(of: ChatID(chat), after: after, limit: 1000, as: device.user)
                } catch {
                    refusals += 1
                    guard refusals < 100 else { throw error }
                    try await Task.sleep(for: .milliseconds(200))
                    continue
                }
                guard let last = page.last else { break }
                await device.fill(chat, with: page)
                after = last.seq
            }
        }
    }

    /// How one device's recovery went.
    struct Recovered: Sendable {
        /// From the drop until connected and resumed; nil when it did not recover.
        var seconds: Double?
        var attempts: Int
        var failure: String?
    }

    /// Reconnects a dropped device: after a random delay up to `jitter`, then with
    /// exponential backoff (0.1 s doubling up to 5 s, with jitter) for up to 60 s; then reads
    /// from `/history` what is too far behind to resume and waits until its `resume`s are
    /// complete.
    func recover(
        _ device: Device, of total: Int, jitter: Duration, since droppedAt: ContinuousClock.Instant
    ) async -> Recovered {
        var random = SplitMix64(seed: options.seed &+ UInt64(device.index) &* 7919)
        func randomDelay(upTo limit: Duration) -> Duration {
            .nanoseconds(Int64.random(in: 0...max(1, Int64(limit.seconds * 1e9)), using: &random))
        }
        try? await Task.sleep(for: randomDelay(upTo: jitter))
        var backoff = Duration.milliseconds(100)
        var attempts = 0
        var lastError = ""
        while ContinuousClock.now - droppedAt < .seconds(60) {
            attempts += 1
            do {
                // A node that does not answer may be gone: the next attempt tries the next one.
                try await device.connect(
                    to: endpoint(for: device, attempt: attempts - 1), from: sourceAddress(for: device.index, of: total))
            } catch {
                lastError = "\(error)"
                try? await Task.sleep(for: backoff + randomDelay(upTo: backoff))
                backoff = min(backoff * 2, .seconds(5))
                continue
            }
            do {
                try await catchUp(device)
            } catch {
                return Recovered(seconds: nil, attempts: attempts, failure: "catching up through /history: \(error)")
            }
            while device.progress.resuming.load(ordering: .relaxed) > 0 {
                guard ContinuousClock.now - droppedAt < .seconds(90) else {
                    return Recovered(seconds: nil, attempts: attempts, failure: "resume did not complete")
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
            return Recovered(seconds: (ContinuousClock.now - droppedAt).seconds, attempts: attempts)
        }
        return Recovered(seconds: nil, attempts: attempts, failure: "did not reconnect within 60 s: \(lastError)")
    }
}

/// How the recoveries of lost connections went in a run riding out faults.
struct RecoveryLog: Sendable {
    var recovered = 0
    var attempts = 0
    /// Seconds the slowest recovery took.
    var slowest: Double?

    mutating func add(_ outcome: Simulation.Recovered) {
        attempts += outcome.attempts
        guard let seconds = outcome.seconds else { return }
        recovered += 1
        slowest = max(slowest ?? 0, seconds)
    }
}
