/// The settings every node on one database must share, as a node publishes them with its
/// heartbeat (docs/scaling.md, "Settings every node shares"):
/// - `token_key`: a fingerprint of the key that signs sessions (``TokenService/fingerprint``),
///   never the key. Nodes with different keys refuse each other's tokens.
/// - `token_lifetime`: how long a session lasts, which would otherwise depend on the node that
///   logged the user in.
/// - `password_hash`: the algorithm and work factor of new hashes. Every node verifies every
///   hash, but nodes that differ rewrite each other's hashes at each log-in.
struct SharedSettings: Equatable, Sendable {
    /// Value by name.
    let values: [String: String]

    init(tokens: TokenService, hasher: PasswordHasher) {
        let work = hasher.algorithm == .bcrypt ? "cost \(hasher.bcryptCost)" : "\(hasher.pbkdf2Iterations) iterations"
        values = [
            "token_key": tokens.fingerprint ?? "none",
            "token_lifetime": "\(tokens.lifetime.components.seconds) s",
            "password_hash": "\(hasher.algorithm.rawValue), \(work)",
        ]
    }

    /// Reads what ``text`` wrote; nil for a node too old to publish its settings.
    init?(text: String) {
        let pairs = text.split(separator: ";").compactMap { pair -> (String, String)? in
            let parts = pair.split(separator: "=", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
        guard !pairs.isEmpty else { return nil }
        values = Dictionary(pairs) { first, _ in first }
    }

    /// `name=value` pairs separated by `;`, sorted by name.
    var text: String {
        values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
    }

    /// The names of the settings whose values differ, sorted.
    func differences(from other: SharedSettings) -> [String] {
        Set(values.keys).union(other.values.keys).filter { values[$0] != other.values[$0] }.sorted()
    }
}

/// Live nodes whose shared settings differ from this node's, and which settings.
struct SettingsMismatch: Equatable, Sendable {
    /// Setting names by node name.
    let differences: [String: [String]]
    /// Whether more live nodes, this one included, share this node's settings than share any
    /// other's: then the others are the odd ones, and this node stays ready. In a tie (two
    /// nodes that differ) no node can tell which is right, and none is ready.
    let inMajority: Bool

    /// Compares this node's settings with the other live nodes' heartbeats (a node too old to
    /// publish its settings is left out); nil when they all match.
    init?(own: SharedSettings, others: [(node: String, settings: SharedSettings)]) {
        var differences: [String: [String]] = [:]
        for (node, settings) in others {
            let differing = own.differences(from: settings)
            if !differing.isEmpty { differences[node] = differing }
        }
        guard !differences.isEmpty else { return nil }
        self.differences = differences
        let sameAsThis = 1 + others.count - differences.count
        let largestOther =
            Dictionary(grouping: others.filter { differences[$0.node] != nil }) { $0.settings.text }
            .values.map(\.count).max() ?? 0
        inMajority = sameAsThis > largestOther
    }

    /// Whether the token key is among them: then each node refuses the other's sessions.
    var keyDiffers: Bool { differences.values.contains { $0.contains("token_key") } }

    /// For `/health/ready` and the log: each node and what differs.
    var description: String {
        differences.sorted { $0.key < $1.key }
            .map { "\($0.key) (\($0.value.joined(separator: ", ")))" }.joined(separator: "; ")
    }
}
