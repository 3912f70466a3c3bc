import Testing

@testable import ChatServer

/// What a node publishes of the settings every node must share, and how it judges a mismatch.
@Suite struct SharedSettingsTests {
    static func settings(secret: String, lifetime: Int = 3600, cost: Int = 4) async -> SharedSettings {
        SharedSettings(
            tokens: await TokenService(secret: secret, lifetime: .seconds(lifetime)),
            hasher: PasswordHasher(algorithm: .bcrypt, bcryptCost: cost, pbkdf2Iterations: 1000))
    }

    @Test func theKeyIsPublishedAsAFingerprintNeverItself() async {
        let secret = "a-secret-that-is-long-enough-for-hs256-signing"
        let settings = await Self.settings(secret: secret)
        #expect(!settings.text.contains(secret) && settings.values["token_key"]?.count == 16)
        #expect(settings.values["token_key"] != (await Self.settings(secret: secret + "2")).values["token_key"])
        #expect(SharedSettings(text: settings.text) == settings, "the text reads back")
        #expect(SharedSettings(text: "") == nil, "a node too old to publish its settings")
    }

    @Test func aNodeIsReadyOnlyWhenMostNodesShareItsSettings() async {
        let mine = await Self.settings(secret: "a-secret-that-is-long-enough-for-hs256-signing")
        let otherKey = await Self.settings(secret: "another-secret-that-is-long-enough-for-hs256")
        let otherLifetime = await Self.settings(secret: "a-secret-that-is-long-enough-for-hs256-signing", lifetime: 60)
        #expect(SettingsMismatch(own: mine, others: [("b", mine)]) == nil)

        let tie = SettingsMismatch(own: mine, others: [("b", otherKey)])
        #expect(tie?.inMajority == false && tie?.keyDiffers == true, "two nodes that differ: neither is ready")
        #expect(tie?.description == "b (token_key)")

        let outvoted = SettingsMismatch(own: otherKey, others: [("a", mine), ("b", mine)])
        #expect(outvoted?.inMajority == false, "the odd one of three")
        let majority = SettingsMismatch(own: mine, others: [("b", mine), ("c", otherLifetime)])
        #expect(majority?.inMajority == true && majority?.keyDiffers == false, "two of three share it")
        #expect(majority?.description == "c (token_lifetime)")
    }
}
