import ArgumentParser
import ChatProtocol
import ChatServer
import ChatSimulator
import Foundation

/// `chatsim`: drives a running chat server with simulated users, checks that nothing was
/// lost, repeated or reordered, and reports throughput, latency and the server's cost.
@main
struct ChatSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chatsim",
        abstract: "Load simulator and correctness checker for the chat server.",
        discussion: """
            Every scenario registers its own users (bcrypt makes that slow: run the server with \
            CHAT_BCRYPT_COST=4 for load tests), raise the server's CHAT_WS_SEND_RATE and \
            CHAT_WS_SEND_BURST for the sending scenarios, and exits with status 1 when a \
            correctness check fails, a --max-p99-ms / --min-rate threshold is missed, or the \
            server throttled the run (THROTTLED; --allow-throttling accepts it). \
            See docs/benchmarks.md.
            """,
        version: ProjectVersion.current,
        subcommands: [
            FanoutCommand.self, PairsCommand.self, HistoryCommand.self, ConnectionsCommand.self,
            ReconnectCommand.self, MixedCommand.self, SearchCommand.self, VerifyCommand.self,
        ])
}

/// Options every scenario takes.
struct CommonOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The server's base URL; for several nodes, their URLs separated by commas.",
            discussion: "Devices connect to the nodes in turn (and to the next one when theirs does not answer); "
                + "REST calls go to the first."))
    var url = "http://127.0.0.1:8000"
    @Option(help: "Seconds of sending before measuring.")
    var warmup = 3.0
    @Option(help: "Seconds measured.")
    var duration = 20.0
    @Option(help: "Seconds to wait for the server to be ready (it may be starting).")
    var waitForServer = 10.0
    @Option(help: "Seed for the random choices (jitter, churn, history reads).")
    var seed: UInt64?
    @Option(help: "New connections a second while connecting devices (0: no limit).")
    var connectRate = 2000.0
    @Option(
        name: .customLong("server-pid"),
        help: "A server process whose CPU time (with its children's) and memory to report; repeat for several.")
    var serverPIDs: [Int32] = []
    @Option(help: "Simulator threads (default: one per core).")
    var threads: Int?
    @Option(help: "Loopback source addresses to spread connections over (default: one per 20,000).")
    var sourceAddresses: Int?
    @Option(name: .customLong("max-p99-ms"), help: "Fail when the scenario's headline p99 latency is above this.")
    var maxP99Milliseconds: Double?
    @Option(help: "Fail when the scenario's headline rate is below this.")
    var minRate: Double?
    @Option(help: "Also write the report as JSON to this file.")
    var json: String?
    @Flag(
        help: ArgumentHelp(
            "Reconnect and resume whenever a connection ends unasked, and repeat sends refused with storage_unavailable.",
            discussion: "For runs during which the server or its database is made to fail (scripts/fault-runs)."))
    var rideOut = false
    @Flag(
        help: ArgumentHelp(
            "Let a run pass although the server throttled it.",
            discussion: "Without it, a run in which the server refused more than 1% of the sends as rate_limited "
                + "or storage_unavailable is THROTTLED, not PASSED: it measured the server's limits."))
    var allowThrottling = false
    @Flag(help: "Print no progress lines (on a terminal, a live one is rewritten once a second).")
    var quiet = false

    func validate() throws {
        guard warmup >= 0, duration > 0 else { throw ValidationError("--warmup must be ≥ 0 and --duration > 0") }
        guard waitForServer >= 0 else { throw ValidationError("--wait-for-server must be ≥ 0") }
        guard connectRate >= 0 else { throw ValidationError("--connect-rate must be ≥ 0") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let sourceAddresses, !(1...254).contains(sourceAddresses) {
            throw ValidationError("--source-addresses must be 1–254")
        }
    }

    /// Runs `scenario`, prints its report, writes the JSON, and fails when the run did.
    func run(_ scenario: some Scenario, rateChange: (after: Duration, rate: Double)? = nil) async throws {
        var options = SimulationOptions(url: url)
        options.rateChange = rateChange
        options.warmup = .milliseconds(Int64(warmup * 1000))
        options.duration = .milliseconds(Int64(duration * 1000))
        if let seed { options.seed = seed }
        options.connectRate = connectRate
        options.serverWait = .milliseconds(Int64(waitForServer * 1000))
        options.serverPIDs = serverPIDs
        if let threads { options.threads = threads }
        options.sourceAddresses = sourceAddresses
        options.maxP99Milliseconds = maxP99Milliseconds
        options.minRate = minRate
        options.rideOut = rideOut
        options.allowThrottling = allowThrottling
        if !quiet {
            // On a terminal, the live line is rewritten in place and each log line replaces it.
            let clearLine = isatty(STDERR_FILENO) == 1 ? "\r\u{1B}[K" : nil
            options.log = { FileHandle.standardError.write(Data("\(clearLine ?? "")chatsim: \($0)\n".utf8)) }
            if let clearLine {
                options.progress = { FileHandle.standardError.write(Data("\(clearLine)chatsim: \($0)".utf8)) }
            }
        }
        let report = try await scenario.run(options)
        print(report.text)
        if let json { try report.json().write(to: URL(fileURLWithPath: json)) }
        if !report.passed { throw ExitCode.failure }
    }
}

/// How senders pace themselves.
struct PaceOptions: ParsableArguments {
    @Option(help: "Unanswered sends each sender may have at a time (default: 10 in fanout, 1 in pairs).")
    var window: Int?
    @Option(help: "Sends a second per sender, instead of a window.")
    var rate: Double?
    @Option(help: "With --rate: the rate senders switch to --after seconds into the measured window.")
    var thenRate: Double?
    @Option(help: "With --then-rate: seconds into the measured window when senders switch.")
    var after: Double?
    @Option(help: "Characters of text per message.")
    var messageSize = Fanout().messageSize

    func validate() throws {
        if window != nil && rate != nil { throw ValidationError("give --window or --rate, not both") }
        if (thenRate != nil) != (after != nil) { throw ValidationError("give --then-rate and --after together") }
        if let thenRate {
            guard rate != nil else { throw ValidationError("--then-rate needs --rate") }
            guard thenRate > 0, let after, after > 0 else {
                throw ValidationError("--then-rate and --after must be above 0")
            }
        }
        if let window, window < 1 { throw ValidationError("--window must be at least 1") }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be above 0") }
        guard (1...4096).contains(messageSize) else { throw ValidationError("--message-size must be 1–4096") }
    }

    /// The switch of rate asked for, if any.
    var rateChange: (after: Duration, rate: Double)? {
        guard let thenRate, let after else { return nil }
        return (.milliseconds(Int64(after * 1000)), thenRate)
    }

    /// The pace asked for, or `scenarioDefault` when neither option was given.
    func pace(or scenarioDefault: Pace) -> Pace {
        rate.map(Pace.rate) ?? window.map(Pace.window) ?? scenarioDefault
    }
}

struct FanoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout", abstract: "One group chat, every member connected, some of them sending.")
    @OptionGroup var common: CommonOptions
    @OptionGroup var sending: PaceOptions
    @Option(help: "Members of the group, each with one connection.")
    var users = Fanout().members
    @Option(help: "Members who send.")
    var senders = Fanout().senders
    @Option(help: "Members who stop reading while measured, to be closed by the server (needs --ride-out).")
    var slowConsumers = Fanout().slowConsumers

    func run() async throws {
        var scenario = Fanout()
        scenario.members = users
        scenario.senders = senders
        scenario.slowConsumers = slowConsumers
        scenario.pace = sending.pace(or: scenario.pace)
        scenario.messageSize = sending.messageSize
        try await common.run(scenario, rateChange: sending.rateChange)
    }
}

struct PairsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairs", abstract: "Many private chats, both members connected and sending.")
    @OptionGroup var common: CommonOptions
    @OptionGroup var sending: PaceOptions
    @Option(help: "Private chats (two users each).")
    var chats = Pairs().chats

    func run() async throws {
        var scenario = Pairs()
        scenario.chats = chats
        scenario.pace = sending.pace(or: scenario.pace)
        scenario.messageSize = sending.messageSize
        try await common.run(scenario, rateChange: sending.rateChange)
    }
}

struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Fills many chats with made-up words, then times one-word and two-word searches over them.")
    @OptionGroup var common: CommonOptions
    @Option(help: "The server's DATABASE_URL: the chats are filled through the server's store.")
    var databaseURL: String
    @Option(help: "Messages to fill the chats with, in all.")
    var messages = 1_000_000
    @Option(help: "Chats the messages are spread over.")
    var chats = 100
    @Option(help: "Distinct words the texts are made of.")
    var vocabulary = 2000
    @Option(help: "Timed requests per query kind.")
    var requests = 200

    func run() async throws {
        var scenario = SearchLatency(database: try DatabaseLocation(url: databaseURL))
        scenario.messages = messages
        scenario.chats = chats
        scenario.vocabulary = vocabulary
        scenario.requests = requests
        try await common.run(scenario)
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Fills a chat with many messages, then times /history at the start, middle and end.")
    @OptionGroup var common: CommonOptions
    @Option(help: "The server's DATABASE_URL: the chat is filled through the server's store.")
    var databaseURL: String
    @Option(help: "Messages to fill the chat with.")
    var messages = 100_000
    @Option(help: "Messages per page.")
    var pageSize = 100
    @Option(help: "Timed requests per depth.")
    var requests = 200

    func run() async throws {
        var scenario = HistoryDepths(database: try DatabaseLocation(url: databaseURL))
        scenario.messages = messages
        scenario.pageSize = pageSize
        scenario.requests = requests
        try await common.run(scenario)
    }
}

struct ConnectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections",
        abstract: "Many idle authenticated connections: time to connect and server memory per connection.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Connections to open.")
    var connections = IdleConnections().connections
    @Option(help: "Connections per user (the server allows CHAT_WS_CONNECTIONS_PER_USER).")
    var perUser = IdleConnections().perUser

    func run() async throws {
        var scenario = IdleConnections()
        scenario.connections = connections
        scenario.perUser = perUser
        try await common.run(scenario)
    }
}

struct ReconnectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconnect",
        abstract: "Drops every connection at once; devices reconnect, resume, and nothing may be missing.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Users, each with one connection.")
    var users = Reconnect().users
    @Option(help: "Members per group chat (one of them sends).")
    var chatSize = Reconnect().chatSize
    @Option(help: "Sends a second per sender.")
    var rate = Reconnect().rate
    @Option(help: "Characters of text per message.")
    var messageSize = Reconnect().messageSize
    @Option(help: "Most milliseconds a device waits before its first reconnect attempt.")
    var jitterMs = Int(Reconnect().jitter / .milliseconds(1))

    func run() async throws {
        var scenario = Reconnect()
        scenario.users = users
        scenario.chatSize = chatSize
        scenario.rate = rate
        scenario.messageSize = messageSize
        scenario.jitter = .milliseconds(jitterMs)
        try await common.run(scenario)
    }
}

struct MixedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mixed",
        abstract: "Groups and private chats: typing, read receipts, history, edits, deletions, search, reconnects.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Users (an even number), each with one connection.")
    var users = Mixed().users
    @Option(help: "Members per group chat.")
    var groupSize = Mixed().groupSize
    @Option(help: "Sends a second per user.")
    var rate = Mixed().rate
    @Option(help: "Characters of text per message.")
    var messageSize = Mixed().messageSize
    @Option(help: "History pages read a second.")
    var historyReads = Mixed().historyReadsPerSecond
    @Option(help: "Devices dropped and reconnected a second.")
    var reconnects = Mixed().reconnectsPerSecond
    @Option(help: "Messages edited or deleted a second (0: none).")
    var changes = Mixed().changesPerSecond
    @Option(help: "The share of those changes that are deletions, from 0 to 1.")
    var deleteShare = Mixed().deleteShare
    @Option(help: "Searches a second (0: none).")
    var searches = Mixed().searchesPerSecond

    func run() async throws {
        var scenario = Mixed()
        scenario.users = users
        scenario.groupSize = groupSize
        scenario.rate = rate
        scenario.messageSize = messageSize
        scenario.historyReadsPerSecond = historyReads
        scenario.reconnectsPerSecond = reconnects
        scenario.changesPerSecond = changes
        scenario.deleteShare = deleteShare
        scenario.searchesPerSecond = searches
        try await common.run(scenario)
    }
}
