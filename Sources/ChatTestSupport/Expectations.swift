import ChatServer

/// A broken expectation in a shared check (store or real-time contract), with where it was
/// detected. Shared checks throw it instead of recording issues, so that they can live in
/// this library and run in both test targets.
public struct ContractFailure: Error, CustomStringConvertible {
    public let description: String
}

/// Throws ``ContractFailure`` unless `condition` holds.
func require(
    _ condition: @autoclosure () async throws -> Bool, _ what: String, file: StaticString = #fileID,
    line: UInt = #line
) async throws {
    guard try await condition() else { throw ContractFailure(description: "\(file):\(line): \(what)") }
}

/// Throws ``ContractFailure`` unless `body` throws `expected`.
func requireError(
    _ expected: ChatError, file: StaticString = #fileID, line: UInt = #line, _ body: () async throws -> Void
) async throws {
    do {
        try await body()
    } catch let error as ChatError where error == expected {
        return
    } catch {
        throw ContractFailure(description: "\(file):\(line): expected \(expected), got \(error)")
    }
    throw ContractFailure(description: "\(file):\(line): expected \(expected), got success")
}
