import ChatProtocol
import Foundation

/// Why a client frame could not be used, as its `error` reply says it.
struct FrameProblem: Error {
    let code: ErrorCode
    let message: String
    let ref: String?
}

extension ClientFrame {
    /// Parses a text frame, telling apart malformed JSON, an unknown `type` and a bad field.
    static func parse(_ text: String) -> Result<ClientFrame, FrameProblem> {
        struct Envelope: Decodable {
            let type: String?
            let clientID: String?

            enum CodingKeys: String, CodingKey {
                case type
                case clientID = "client_id"
            }
        }
        let data = Data(text.utf8)
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: data) else {
            return .failure(
                FrameProblem(code: .invalidJSON, message: "A frame must be a JSON object with a \"type\".", ref: nil))
        }
        if let key = DuplicateKeyCheck.firstDuplicate(in: data) {
            return .failure(
                FrameProblem(code: .invalidJSON, message: "The key \"\(key)\" appears twice.", ref: envelope.type))
        }
        let known = Kind.allCases.map(\.rawValue)
        guard let type = envelope.type, known.contains(type) else {
            return .failure(
                FrameProblem(
                    code: .unknownType, message: "\"type\" must be one of \(known.joined(separator: ", ")).",
                    ref: envelope.type))
        }
        do {
            return .success(try JSONDecoder().decode(ClientFrame.self, from: data))
        } catch {
            let problem =
                (error as? DecodingError).flatMap(ChatError.init(decoding:)) ?? .invalidField(type, "is malformed")
            return .failure(FrameProblem(code: problem.code, message: problem.message, ref: envelope.clientID ?? type))
        }
    }
}
