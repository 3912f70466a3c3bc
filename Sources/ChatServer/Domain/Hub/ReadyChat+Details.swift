import ChatProtocol

extension ReadyChat {
    /// A chat as a connection starts following it at `lastSeq`.
    init(_ details: ChatDetails, lastSeq: Int64, isOnline: (UserID) -> Bool) {
        let chat = details.chat
        self.init(
            id: chat.id, name: chat.name, chatType: chat.type, creatorID: chat.creatorID, lastSeq: lastSeq,
            members: details.members.map {
                ReadyMember(userID: $0.userID, name: $0.name, readSeq: $0.readSeq, online: isOnline($0.userID))
            })
    }
}
