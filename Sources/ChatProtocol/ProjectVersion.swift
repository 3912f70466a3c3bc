/// The release this build belongs to: `chat-server --version`, `chatsim --version` and the
/// OpenAPI document's `info.version` (a test holds the document to it). CHANGELOG.md has a
/// section for each release; docs/operations.md says what a version number promises.
public enum ProjectVersion {
    public static let current = "0.2.0"
}
