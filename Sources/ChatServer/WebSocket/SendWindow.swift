import Synchronization

/// The sends one connection has in flight (admitted and not yet answered), at most
/// ``capacity``. The reader takes a slot before it admits a send and waits when none is free,
/// so a client that pipelines more sends waits in its own socket buffer, not in the server's
/// memory. Admission control (``SendAdmission``) bounds how long each admitted send waits, so
/// a slot frees within that bound.
final class SendWindow: Sendable {
    /// Most sends of one connection in flight at once.
    static let capacity = 32

    private struct State {
        var free = SendWindow.capacity
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Takes a slot, waiting for one when all are taken.
    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state in
                guard state.free > 0 else {
                    state.waiters.append(continuation)
                    return false
                }
                state.free -= 1
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    /// Gives a slot back; the longest waiter gets it.
    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiters.isEmpty else {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
