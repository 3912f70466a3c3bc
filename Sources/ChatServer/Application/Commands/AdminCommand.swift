import ArgumentParser

/// `chat-server admin grant|revoke NAME`.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Grant or revoke administrator rights.", subcommands: [Grant.self, Revoke.self])

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a user an administrator.")

        @Argument(help: "The user's name.")
        var name: String

        func run() async throws {
            try await setAdmin(true, name: name)
            print("\(name) is now an administrator.")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take administrator rights away from a user.")

        @Argument(help: "The user's name.")
        var name: String

        func run() async throws {
            try await setAdmin(false, name: name)
            print("\(name) is no longer an administrator.")
        }
    }
}

private func setAdmin(_ isAdmin: Bool, name: String) async throws {
    try await withConfiguredStore { _, store, _ in
        guard try await store.setAdmin(isAdmin, nameKey: User.key(for: name)) != nil else {
            throw ValidationError("No user is named \(name).")
        }
    }
}
