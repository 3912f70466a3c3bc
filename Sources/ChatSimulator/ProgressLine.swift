import Histogram
import Synchronization

extension Simulation {
    /// Devices whose delivery latencies make the progress line's p99: a spread of at most this
    /// many, so that the line costs the same for 50 devices as for 19,000.
    static let progressSample = 64

    /// Shows `options.progress` once a second until the measured window ends: the phase, the
    /// devices connected, messages stored and frames delivered a second, and the p99 of
    /// send → delivery in the measured window so far (over a sample of the devices).
    func showProgress(_ devices: [Device]) async {
        guard let show = options.progress, !devices.isEmpty else { return }
        let step = max(1, devices.count / Self.progressSample)
        let sample = stride(from: 0, to: devices.count, by: step).map { devices[$0] }
        var last = (at: ContinuousClock.now, stored: stored(devices), received: received(devices))
        while control.phase < .draining {
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
            let now = (at: ContinuousClock.now, stored: stored(devices), received: received(devices))
            let seconds = max((now.at - last.at).seconds, 1e-9)
            let connected = devices.reduce(0) { $0 + ($1.progress.connected.load(ordering: .relaxed) ? 1 : 0) }
            var latency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            for device in sample { latency.add(await device.deliveryLatencySoFar()) }
            let p99 = latency.totalCount > 0 ? format(Double(latency.valueAtPercentile(99)) / 1000) + " ms" : "–"
            show(
                "\(control.phase == .measuring ? "measuring" : "warming up") · \(connected)/\(devices.count) devices "
                    + "· stored \(format(Double(now.stored - last.stored) / seconds))/s "
                    + "· delivered \(format(Double(now.received - last.received) / seconds))/s "
                    + "· p99 send→delivery \(p99) so far")
            last = now
        }
    }

    /// Messages and own acks the devices received so far.
    func received(_ devices: [Device]) -> Int {
        devices.reduce(0) { $0 + $1.progress.received.load(ordering: .relaxed) }
    }
}
