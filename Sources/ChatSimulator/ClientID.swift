import Dispatch

/// The `client_id` of every simulated send: `<run>.<sender>.<number>.<sent at>`, four
/// decimal numbers.
///
/// It carries what the checker and the latency measurement need, so that receivers look up
/// nothing: which run sent it (messages from other runs are unexpected), which simulated
/// sender and its how-manieth send (so the checker knows it was really sent), and the
/// sender's monotonic clock reading in nanoseconds (receivers on the same machine subtract it
/// from their own reading: latency without comparing clocks across machines).
struct ClientID: Equatable, Sendable {
    let run: UInt32
    let sender: Int
    let number: Int
    let sentAt: UInt64

    var text: String { "\(run).\(sender).\(number).\(sentAt)" }

    init(run: UInt32, sender: Int, number: Int, sentAt: UInt64) {
        self.run = run
        self.sender = sender
        self.number = number
        self.sentAt = sentAt
    }

    /// Parses the four numbers from `bytes`; nil when they are not in this format.
    init?<Bytes: Collection<UInt8>>(bytes: Bytes) {
        var numbers: [UInt64] = []
        numbers.reserveCapacity(4)
        var value: UInt64 = 0
        var digits = 0
        for byte in bytes {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") && digits < 19 {
                value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
                digits += 1
            } else if byte == UInt8(ascii: "."), digits > 0, numbers.count < 3 {
                numbers.append(value)
                value = 0
                digits = 0
            } else {
                return nil
            }
        }
        guard digits > 0, numbers.count == 3, numbers[0] <= UInt32.max, numbers[1] <= Int.max, numbers[2] <= Int.max
        else { return nil }
        self.init(run: UInt32(numbers[0]), sender: Int(numbers[1]), number: Int(numbers[2]), sentAt: value)
    }

    init?(_ text: String) {
        self.init(bytes: text.utf8)
    }
}

/// Nanoseconds on the monotonic clock of this machine.
func monotonicNanoseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}
