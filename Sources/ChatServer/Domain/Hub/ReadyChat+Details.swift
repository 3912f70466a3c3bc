import ChatProtocol

extension ReadyChat {
    /// A chat as a connection starts following it at `position`.
    init(_ details: ChatDetails, position: LivePosition, isOnline: (UserID) -> Bool) {
        let chat = details.chat
        self.init(
            id: chat.id, name: chat.name, chatType: chat.type, creatorID: chat.creatorID, lastSeq: position.lastSeq,
            lastUpdate: position.lastUpdate,
            members: details.members.map {
                ReadyMember(userID: $0.userID, name: $0.name, readSeq: $0.readSeq, online: isOnline($0.userID))
            })
    }
}
