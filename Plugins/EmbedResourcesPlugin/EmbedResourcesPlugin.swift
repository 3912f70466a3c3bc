import Foundation
import PackagePlugin

/// Embeds the package's runtime files (SQL migrations, the OpenAPI and AsyncAPI documents, the web client) into the
/// `ChatServer` module, so the built binary works from any directory and ships as one file.
@main
struct EmbedResourcesPlugin: BuildToolPlugin {
    /// Folders under the package root whose files are embedded.
    static let folders = ["asyncapi", "migrations", "openapi", "web"]

    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let root = context.package.directoryURL
        let files = try Self.folders.flatMap { try Self.files(under: root.appending(path: $0)) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedResources.swift")
        let relativePaths = files.map {
            String($0.path(percentEncoded: false).dropFirst(root.path(percentEncoded: false).count))
        }
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) resource files",
                executable: try context.tool(named: "EmbedResources").url,
                arguments: [output.path(percentEncoded: false), root.path(percentEncoded: false)] + relativePaths,
                inputFiles: files,
                outputFiles: [output]
            )
        ]
    }

    private static func files(under folder: URL) throws -> [URL] {
        guard
            let enumerator = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey])
        else {
            return []
        }
        var files: [URL] = []
        for case let url as URL in enumerator
        where try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true {
            files.append(url)
        }
        return files.sorted { $0.path < $1.path }
    }
}
