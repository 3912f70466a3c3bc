import ChatProtocol
import Hummingbird

/// `GET /limits`: the input limits the server enforces, public, so that the log-in page and
/// any client can check what a person types before sending it (see ``InputLimits``).
struct LimitsController {
    let limits: InputLimits

    func addPublicRoutes(to router: Router<ChatRequestContext>) {
        router.get("/limits", use: show)
    }

    @Sendable func show(request: Request, context: ChatRequestContext) async throws -> Response {
        try JSONResponse.make(limits)
    }
}
