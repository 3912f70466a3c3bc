import ChatTestSupport
import Foundation
import HTTPTypes
import Testing

@testable import ChatServer

@Suite("Log-in throttle")
struct LoginThrottleTests {
    /// The throttle reads `ContinuousClock` instants: these move only with `clock`.
    static func instants(of clock: ManualClock) -> @Sendable () -> ContinuousClock.Instant {
        let start = ContinuousClock.now
        return { start + clock.elapsed }
    }

    @Test func theFailureAfterTheLimitWaitsUntilTheOldestLeavesTheWindow() async throws {
        let clock = ManualClock()
        let throttle = LoginThrottle(
            limits: .init(perAccount: 3, perAddress: 100), failures: LocalLoginFailures(now: Self.instants(of: clock)))
        for _ in 1...2 {
            try await throttle.recordFailure(account: "alice", address: "10.0.0.1")
            clock.advance(by: .seconds(10))
        }
        #expect(try await throttle.retryAfter(account: "alice", address: "10.0.0.1") == nil)
        try await throttle.recordFailure(account: "alice", address: "10.0.0.1")
        #expect(try await throttle.retryAfter(account: "alice", address: "10.0.0.1") == .seconds(40))
        #expect(try await throttle.retryAfter(account: "alice", address: "10.0.0.2") == .seconds(40), "per account")
        #expect(try await throttle.retryAfter(account: "bob", address: "10.0.0.1") == nil)
        clock.advance(by: .seconds(40))
        #expect(
            try await throttle.retryAfter(account: "alice", address: "10.0.0.1") == nil, "the oldest left the window")
    }

    @Test func anAddressIsLimitedAcrossAccounts() async throws {
        let clock = ManualClock()
        let throttle = LoginThrottle(
            limits: .init(perAccount: 100, perAddress: 3), failures: LocalLoginFailures(now: Self.instants(of: clock)))
        for account in ["a", "b", "c"] {
            try await throttle.recordFailure(account: account, address: "10.0.0.1")
        }
        #expect(try await throttle.retryAfter(account: "d", address: "10.0.0.1") == .seconds(60))
        #expect(try await throttle.retryAfter(account: "d", address: "10.0.0.2") == nil)
        #expect(try await throttle.retryAfter(account: "d", address: nil) == nil)
    }

    @Test func successClearsTheAccountButNotTheAddress() async throws {
        let clock = ManualClock()
        let throttle = LoginThrottle(
            limits: .init(perAccount: 2, perAddress: 2), failures: LocalLoginFailures(now: Self.instants(of: clock)))
        try await throttle.recordFailure(account: "alice", address: "10.0.0.1")
        try await throttle.recordFailure(account: "alice", address: "10.0.0.1")
        try await throttle.recordSuccess(account: "alice")
        #expect(try await throttle.retryAfter(account: "alice", address: "10.0.0.2") == nil)
        #expect(try await throttle.retryAfter(account: "alice", address: "10.0.0.1") != nil)
    }
}

@Suite("Log-in limits over HTTP", .timeLimit(.minutes(5)))
struct LoginLimitTests {
    static let form = "application/x-www-form-urlencoded"

    @Test func failuresPastTheLimitGet429WithRetryAfterEvenWithTheRightPassword() async throws {
        try await TestApp.run { api in
            try await api.register("alice")
            try await api.register("bob")
            for _ in 1...10 {
                let wrong = try await api.logIn("alice", password: "not-her-password")
                #expect(wrong.status == .unauthorized)
            }
            let refused = try await api.logIn("alice")
            #expect(refused.status == .tooManyRequests)
            let seconds = try #require(refused.headers[.retryAfter].flatMap { Int($0) })
            #expect((1...60).contains(seconds))
            #expect(refused.bodyText.contains(#""code":"too_many_attempts""#))
            let refusedByEmail = try await api.logIn("ALICE ")
            #expect(refusedByEmail.status == .tooManyRequests, "the same account under another spelling")
            #expect(try await api.logIn("bob").status == .ok, "other accounts are unaffected")
        }
    }

    @Test func anAddressIsLimitedAndForgedForwardingHeadersDoNotHelp() async throws {
        try await TestApp.run(testing: .live, overrides: ["CHAT_LOGIN_FAILURES_PER_ADDRESS": "3"]) { api in
            try await api.register("alice")
            for (number, name) in ["x1", "x2", "x3"].enumerated() {
                let failed = try await api.logIn(name, headers: [AuthController.xForwardedFor: "203.0.113.\(number)"])
                #expect(failed.status == .unauthorized)
            }
            let refused = try await api.logIn("alice", headers: [AuthController.xForwardedFor: "198.51.100.7"])
            #expect(refused.status == .tooManyRequests, "X-Forwarded-For from an untrusted peer is ignored")
        }
    }

    @Test func behindATrustedProxyTheForwardedAddressCounts() async throws {
        let overrides = ["CHAT_LOGIN_FAILURES_PER_ADDRESS": "3", "CHAT_TRUSTED_PROXIES": "127.0.0.1"]
        try await TestApp.run(testing: .live, overrides: overrides) { api in
            try await api.register("alice")
            let attacker: HTTPFields = [AuthController.xForwardedFor: "forged, 203.0.113.9"]
            for name in ["x1", "x2", "x3"] {
                #expect(try await api.logIn(name, headers: attacker).status == .unauthorized)
            }
            #expect(try await api.logIn("alice", headers: attacker).status == .tooManyRequests)
            let someoneElse: HTTPFields = [AuthController.xForwardedFor: "203.0.113.9, 198.51.100.7"]
            #expect(try await api.logIn("alice", headers: someoneElse).status == .ok)
        }
    }
}
