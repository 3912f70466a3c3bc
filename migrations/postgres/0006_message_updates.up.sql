-- Edits, deletions and replies (docs/protocol.md, "Edits and deletions").
--
-- Every edit or deletion of a chat's message takes the chat's next update_seq under the chat
-- row's lock, as a send takes its next seq: per chat, updates commit in update_seq order. A
-- node delivers them by reading the messages whose update_seq is above the last one it
-- delivered, and a reconnecting client catches up the same way, from the last one it saw.

ALTER TABLE chats ADD COLUMN last_update BIGINT NOT NULL DEFAULT 0 CHECK (last_update >= 0);

-- reply_to has no foreign key: the server checks that it names a message of the same chat when
-- it stores the reply, and a message is never removed (a deletion leaves a tombstone).
ALTER TABLE messages
    ADD COLUMN reply_to BIGINT,
    ADD COLUMN edited_at TIMESTAMPTZ,
    ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN update_seq BIGINT NOT NULL DEFAULT 0 CHECK (update_seq >= 0);

-- Only updated messages are indexed: sends write no extra index entry.
CREATE INDEX messages_chat_update_seq ON messages (chat_id, update_seq) WHERE update_seq > 0;
