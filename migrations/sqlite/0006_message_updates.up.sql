-- Edits, deletions and replies (docs/protocol.md, "Edits and deletions").
--
-- Every edit or deletion of a chat's message takes the chat's next update_seq in the write
-- transaction, as a send takes its next seq. The server delivers updates by reading the
-- messages whose update_seq is above the last one it delivered, and a reconnecting client
-- catches up the same way, from the last one it saw.

ALTER TABLE chats ADD COLUMN last_update INTEGER NOT NULL DEFAULT 0 CHECK (last_update >= 0);

-- reply_to has no foreign key: the server checks that it names a message of the same chat when
-- it stores the reply, and a message is never removed (a deletion leaves a tombstone).
ALTER TABLE messages ADD COLUMN reply_to INTEGER;

-- Milliseconds since 1970, as created_at; null until the first edit.
ALTER TABLE messages ADD COLUMN edited_at INTEGER;

ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1));

ALTER TABLE messages ADD COLUMN update_seq INTEGER NOT NULL DEFAULT 0 CHECK (update_seq >= 0);

-- Only updated messages are indexed: sends write no extra index entry.
CREATE INDEX messages_chat_update_seq ON messages (chat_id, update_seq) WHERE update_seq > 0;
