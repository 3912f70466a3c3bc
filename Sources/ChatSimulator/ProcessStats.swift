import Foundation

/// CPU time and memory of processes, read from Linux's /proc.
enum ProcessStats {
    /// One process at one moment.
    struct Sample: Sendable {
        let pid: Int32
        let command: String
        /// CPU seconds of the process and every descendant (PostgreSQL's backends are
        /// children of the postmaster), including descendants that exited and were reaped.
        let cpuSeconds: Double
        /// Resident memory of the process itself.
        let rssBytes: UInt64
    }

    /// Samples `pids`; a pid that does not exist is left out.
    static func sample(_ pids: [Int32]) -> [Sample] {
        guard !pids.isEmpty else { return [] }
        let table = processTable()
        var children: [Int32: [Int32]] = [:]
        for (pid, entry) in table { children[entry.parent, default: []].append(pid) }
        return pids.compactMap { pid in
            guard let root = table[pid] else { return nil }
            var ticks: UInt64 = 0
            var queue = [pid]
            while let next = queue.popLast() {
                ticks += table[next]?.ticks ?? 0
                queue.append(contentsOf: children[next] ?? [])
            }
            return Sample(
                pid: pid, command: root.command, cpuSeconds: Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK))),
                rssBytes: root.residentPages * UInt64(sysconf(Int32(_SC_PAGESIZE))))
        }
    }

    /// CPU seconds this process used so far (user and system).
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    private struct Entry {
        let command: String
        let parent: Int32
        let ticks: UInt64
        let residentPages: UInt64
    }

    private static func processTable() -> [Int32: Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var table: [Int32: Entry] = [:]
        for name in names {
            guard let pid = Int32(name), let entry = entry(pid) else { continue }
            table[pid] = entry
        }
        return table
    }

    /// Parses /proc/PID/stat: the command is in parentheses and may hold spaces, so fields
    /// are counted from the last `)` (state is field 3, ppid 4, utime 14 to cstime 17, rss 24).
    private static func entry(_ pid: Int32) -> Entry? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 21, let parent = Int32(fields[1]), let rss = UInt64(fields[21]) else { return nil }
        let ticks = fields[11...14].compactMap { UInt64($0) }.reduce(0, +)
        return Entry(
            command: String(stat[stat.index(after: open)..<close]), parent: parent, ticks: ticks, residentPages: rss)
    }

    /// Raises this process's open-file limit to its hard limit (each connection is a file).
    /// - Returns: the limit now in force.
    @discardableResult
    static func raiseOpenFileLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return UInt64(limit.rlim_cur)
    }
}
