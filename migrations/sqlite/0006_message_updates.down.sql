DROP INDEX messages_chat_update_seq;
ALTER TABLE messages DROP COLUMN update_seq;
ALTER TABLE messages DROP COLUMN deleted;
ALTER TABLE messages DROP COLUMN edited_at;
ALTER TABLE messages DROP COLUMN reply_to;
ALTER TABLE chats DROP COLUMN last_update;
