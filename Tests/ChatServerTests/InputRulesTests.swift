import ChatServer
import Testing

@Suite("Input rules")
struct InputRulesTests {
    let rules = InputRules(minPasswordLength: 8, maxMessageLength: 10)

    @Test func namesAreTrimmedAndNormalized() throws {
        #expect(try rules.userName("  Sergey \n") == "Sergey")
        // "é" as e + combining accent becomes the single precomposed character.
        #expect(try rules.userName("Ame\u{301}lie") == "Am\u{E9}lie")
    }

    @Test(
        "bad names are refused",
        arguments: ["", "   ", "a@b", "tab\there", "nul\u{0}", "rtl\u{202E}name", String(repeating: "x", count: 51)])
    func badNamesAreRefused(_ name: String) {
        #expect(throws: ChatError.self) { try rules.userName(name) }
    }

    @Test(arguments: ["user@example.com", "first.last+tag@sub.example.org", " Upper@Example.COM "])
    func plausibleEmailsAreAccepted(_ email: String) throws {
        #expect(try rules.email(email) == email.trimmingCharacters(in: .whitespaces))
    }

    @Test(arguments: ["", "plain", "@example.com", "a@b", "a@@b.com", "a b@c.com", "a@b..com", "a@.com", "a@com."])
    func implausibleEmailsAreRefused(_ email: String) {
        #expect(throws: ChatError.self) { try rules.email(email) }
    }

    @Test func passwordsFollowThePolicy() throws {
        #expect(throws: ChatError.invalidField("password", "must be at least 8 characters long")) {
            try rules.newPassword("short", maxBytes: 72)
        }
        #expect(try rules.newPassword(String(repeating: "a", count: 72), maxBytes: 72).count == 72)
        #expect(throws: ChatError.invalidField("password", "must be at most 72 bytes long in UTF-8")) {
            try rules.newPassword(String(repeating: "a", count: 73), maxBytes: 72)
        }
        // 25 Cyrillic letters are 50 bytes; 40 are 80 bytes, over bcrypt's limit.
        #expect(try rules.newPassword(String(repeating: "ж", count: 25), maxBytes: 72).utf8.count == 50)
        #expect(throws: ChatError.self) { try rules.newPassword(String(repeating: "ж", count: 40), maxBytes: 72) }
        #expect(throws: ChatError.invalidField("password", "must not contain NUL characters")) {
            try rules.newPassword("password\u{0}tail", maxBytes: 72)
        }
    }

    @Test func messageTextIsKeptVerbatim() throws {
        #expect(try rules.messageText(" a\n\tb ") == " a\n\tb ")
        #expect(throws: ChatError.invalidField("text", "must not be empty")) { try rules.messageText(" \n ") }
        #expect(throws: ChatError.self) { try rules.messageText("12345678901") }
        #expect(throws: ChatError.self) { try rules.messageText("bell\u{7}") }
    }

    @Test func clientIDsArePrintableASCII() throws {
        #expect(try rules.clientID("3f2a-01") == "3f2a-01")
        for bad in ["", "with space", "ünïcode", String(repeating: "x", count: 65)] {
            #expect(throws: ChatError.self) { try rules.clientID(bad) }
        }
    }
}
