#if canImport(Glibc)
import Foundation
import Glibc

/// The server process's memory and file descriptors, read from `/proc/self` (Linux).
struct ProcessSample {
    var residentBytes: Int
    var openDescriptors: Int
    var maxDescriptors: Int

    /// Reads the sample; nil where `/proc` is missing or unreadable.
    static func read() -> ProcessSample? {
        // statm: sizes in pages; the second field is the resident set.
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let residentPages = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) }),
            let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")
        else { return nil }
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessSample(
            residentBytes: residentPages * sysconf(Int32(_SC_PAGESIZE)),
            // Listing the directory opens a descriptor of its own.
            openDescriptors: max(0, descriptors.count - 1),
            maxDescriptors: Int(clamping: limit.rlim_cur))
    }
}
#else
/// The server process's memory and file descriptors: read on Linux only.
struct ProcessSample {
    var residentBytes: Int
    var openDescriptors: Int
    var maxDescriptors: Int

    static func read() -> ProcessSample? { nil }
}
#endif
