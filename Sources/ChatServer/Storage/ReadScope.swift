import Synchronization

/// One request's read-your-writes scope. The request's session check, its first statement on
/// the primary, notes where the primary's WAL was: at least as far as everything the client
/// could have seen before the request. A replica known to have replayed past that position
/// serves the request's reads without asking the primary for the chats' positions
/// (docs/operations.md, "Read replicas").
final class ReadScope: Sendable {
    /// The scope of the request the current task serves; nil outside one (a WebSocket's frames).
    @TaskLocal static var current: ReadScope?

    /// 0 until a position is noted; -1 once the request wrote.
    private let position = Atomic<Int64>(0)

    init() {}

    /// The primary's position noted first in this request, if any, and if the request has not
    /// written since.
    var primaryPosition: Int64? {
        let noted = position.load(ordering: .acquiring)
        return noted > 0 ? noted : nil
    }

    /// Notes the primary's position; the first one noted stays (later ones are only further).
    func notePrimaryPosition(_ noted: Int64) {
        _ = position.compareExchange(expected: 0, desired: noted, ordering: .acquiringAndReleasing)
    }

    /// Notes that the request writes: the noted position says nothing of what it writes, so
    /// its reads from now on must find their data on a replica by their own positions.
    func writes() {
        position.store(-1, ordering: .releasing)
    }
}
