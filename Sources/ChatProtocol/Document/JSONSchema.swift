import Foundation

/// Checks JSON values against the part of JSON Schema the protocol's documents use: `type`
/// (one or a list), `const`, `enum`, `properties`, `required`, `items`, `minimum`,
/// `minLength`, `maxLength`, `pattern` and `$ref` to another schema of the same document.
/// `format` and descriptive keywords are not checked. Any other keyword is reported, so that a
/// document cannot rely on a rule nobody checks.
public struct JSONSchemaChecker: Sendable {
    /// The document `$ref`s point into.
    let document: JSONValue
    /// Whether a property no schema declares is a problem: the document's own tests use this to
    /// keep it complete; a client checking a server accepts additions, as the protocol allows.
    let rejectUndeclaredProperties: Bool

    static let checkedKeywords: Set<String> = [
        "type", "const", "enum", "properties", "required", "items", "minimum", "minLength", "maxLength", "pattern",
        "$ref",
    ]
    static let descriptiveKeywords: Set<String> = ["description", "format", "examples", "title"]

    public init(document: JSONValue, rejectUndeclaredProperties: Bool) {
        self.document = document
        self.rejectUndeclaredProperties = rejectUndeclaredProperties
    }

    /// What is wrong with `value` under `schema`, each problem naming where (`$.message.seq`);
    /// empty when nothing is.
    public func problems(of value: JSONValue, against schema: JSONValue, at path: String = "$") -> [String] {
        guard let rules = schema.object else { return ["\(path): the schema is not an object"] }
        if let reference = rules["$ref"]?.string {
            guard let target = resolve(reference) else { return ["\(path): cannot resolve \(reference)"] }
            return problems(of: value, against: target, at: path)
        }
        var found: [String] = []
        for keyword in rules.keys
        where !Self.checkedKeywords.contains(keyword) && !Self.descriptiveKeywords.contains(keyword) {
            found.append("\(path): the schema uses \(keyword), which is not checked")
        }
        if let type = rules["type"] {
            let allowed = Set(type.array?.compactMap(\.string) ?? type.string.map { [$0] } ?? [])
            if allowed.isDisjoint(with: value.schemaTypes) {
                return found + ["\(path): expected \(allowed.sorted().joined(separator: " or ")), got \(value)"]
            }
        }
        if let constant = rules["const"], constant != value {
            found.append("\(path): expected \(constant), got \(value)")
        }
        if let options = rules["enum"]?.array, !options.contains(value) {
            found.append("\(path): \(value) is not one of \(options.compactMap(\.string).joined(separator: ", "))")
        }
        if case .integer(let number) = value, let minimum = rules["minimum"], case .integer(let least) = minimum,
            number < least
        {
            found.append("\(path): \(number) is below the minimum \(least)")
        }
        if case .string(let text) = value {
            found += stringProblems(text, rules, at: path)
        }
        if case .array(let items) = value, let itemSchema = rules["items"] {
            for (index, item) in items.enumerated() {
                found += problems(of: item, against: itemSchema, at: "\(path)[\(index)]")
            }
        }
        if case .object(let members) = value {
            let declared = rules["properties"]?.object ?? [:]
            for name in rules["required"]?.array?.compactMap(\.string) ?? [] where members[name] == nil {
                found.append("\(path): \(name) is missing")
            }
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                if let propertySchema = declared[name] {
                    found += problems(of: member, against: propertySchema, at: "\(path).\(name)")
                } else if rejectUndeclaredProperties {
                    found.append("\(path).\(name) is not in the document")
                }
            }
        }
        return found
    }

    private func stringProblems(_ text: String, _ rules: [String: JSONValue], at path: String) -> [String] {
        var found: [String] = []
        if case .integer(let least)? = rules["minLength"], text.count < least {
            found.append("\(path): shorter than \(least) characters")
        }
        if case .integer(let most)? = rules["maxLength"], text.count > most {
            found.append("\(path): longer than \(most) characters")
        }
        if let pattern = rules["pattern"]?.string {
            if let expression = try? NSRegularExpression(pattern: pattern) {
                let range = NSRange(text.startIndex..., in: text)
                if expression.firstMatch(in: text, range: range) == nil {
                    found.append("\(path): does not match \(pattern)")
                }
            } else {
                found.append("\(path): the pattern \(pattern) is not a regular expression")
            }
        }
        return found
    }

    /// The schema a local reference (`#/components/schemas/Message`) names.
    func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#/") else { return nil }
        var node: JSONValue? = document
        for part in reference.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
        return node
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .integer(let value): "\(value)"
        case .number(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .object(let members):
            "{" + members.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}
