import Foundation
import Logging
import Synchronization

/// Writes log records to standard error, one line each, as text or JSON (`CHAT_LOG_FORMAT`).
///
/// Control characters in messages and metadata are escaped in both formats, so nothing a user
/// sends (a name, a path, a message) can start a forged log line.
public struct ChatLogHandler: LogHandler {
    /// How records are written.
    public enum Format: String, Sendable, CaseIterable {
        /// `2026-11-25T14:08:33.120Z info chat-server: message key=value ...`
        case text
        /// `{"ts":"...","level":"info","label":"chat-server","message":"...","key":"value"}`
        case json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format
    private let output: @Sendable (String) -> Void

    /// - Parameter output: where finished lines go; standard error unless a test captures them.
    public init(
        label: String, format: Format, level: Logger.Level,
        output: @escaping @Sendable (String) -> Void = ChatLogHandler.writeToStandardError
    ) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        if let error = event.error { merged["error"] = "\(error)" }
        let timestamp = Date().formatted(Self.timestampStyle)
        switch format {
        case .text:
            let fields = merged.sorted { $0.key < $1.key }
                .map { "\(Self.escaped($0.key))=\(Self.escaped(Self.flatten($0.value)))" }
            let line =
                ([timestamp, event.level.rawValue, "\(label):", Self.escaped(event.message.description)] + fields)
                .joined(separator: " ")
            output(line)
        case .json:
            var object: [String: String] = merged.mapValues(Self.flatten)
            object["ts"] = timestamp
            object["level"] = event.level.rawValue
            object["label"] = label
            object["message"] = event.message.description
            // JSONSerialization escapes control characters, so one record is always one line.
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            output(String(decoding: data, as: UTF8.self))
        }
    }

    private static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    private static let standardError = Mutex(())

    /// Writes a line to standard error, whole, even when several threads log at once.
    @Sendable public static func writeToStandardError(_ line: String) {
        standardError.withLock { _ in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    private static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map(flatten).joined(separator: ",") + "]"
        case .dictionary(let dictionary):
            "{" + dictionary.sorted { $0.key < $1.key }.map { "\($0.key)=\(flatten($0.value))" }.joined(separator: ",")
                + "}"
        }
    }

    /// The text with control characters (and spaces' look-alikes that end lines) escaped.
    static func escaped(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                let category = scalar.properties.generalCategory
                if category == .control || category == .lineSeparator || category == .paragraphSeparator {
                    result += String(format: "\\u{%X}", scalar.value)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result
    }
}
