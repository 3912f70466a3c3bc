import ChatProtocol

/// Decides whether messages are read, from the members' "read up to seq" markers.
///
/// A message is read when at least one member other than its sender exists and every
/// member other than its sender has a marker at or past its `seq`. In a private chat that
/// is "the other person has read it"; in a group, "everyone else has". Only current members
/// count, and new members start with their marker at the chat's end when they join, so
/// adding someone never turns old messages unread.
public struct ReadMarkers: Sendable {
    // The two lowest markers are enough to answer "lowest marker of everyone but X" in O(1).
    private let lowest: (user: UserID, seq: Int64)?
    private let secondLowestSeq: Int64?

    public init(_ members: [ChatMember]) {
        let sorted = members.sorted { $0.readSeq < $1.readSeq }
        lowest = sorted.first.map { ($0.userID, $0.readSeq) }
        secondLowestSeq = sorted.dropFirst().first?.readSeq
    }

    /// The lowest marker among members other than `user`, or nil when there are none.
    public func lowestReadSeq(excluding user: UserID) -> Int64? {
        guard let lowest else { return nil }
        return lowest.user == user ? secondLowestSeq : lowest.seq
    }

    /// Whether `message` has been read by everyone it was sent to.
    public func isRead(_ message: Message) -> Bool {
        guard let others = lowestReadSeq(excluding: message.senderID) else { return false }
        return others >= message.seq
    }
}
