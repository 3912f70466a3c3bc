DROP INDEX messages_chat_update_seq;
ALTER TABLE messages DROP COLUMN reply_to, DROP COLUMN edited_at, DROP COLUMN deleted, DROP COLUMN update_seq;
ALTER TABLE chats DROP COLUMN last_update;
