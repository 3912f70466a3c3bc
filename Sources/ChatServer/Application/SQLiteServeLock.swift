#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Keeps a second `chat-server serve` off a SQLite database: SQLite serves one node, whose
/// hub alone knows which messages it delivered (several nodes need PostgreSQL, see
/// docs/scaling.md). An exclusive `flock` on the database file, held while the process lives;
/// SQLite's own locks are `fcntl` locks, which `flock` leaves alone, so admin commands beside
/// the server still work.
enum SQLiteServeLock {
    /// - Throws: ``StartupError/sqliteInUse(_:)`` when another process holds the lock.
    static func acquire(databasePath path: String) throws {
        // Created when missing: SQLite takes an empty file for a new database.
        let descriptor = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw StorageError.unreachable("cannot open \(path) (errno \(errno))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw StartupError.sqliteInUse(path)
        }
        // The descriptor stays open, holding the lock, until the process exits.
    }
}
