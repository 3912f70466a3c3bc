import ArgumentParser
import ChatServer

/// The `chat-server` executable: everything else lives in the ChatServer library.
@main
enum ChatServerApp {
    static func main() async {
        await ChatServerCommand.main()
    }
}
