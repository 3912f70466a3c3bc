-- pgbench script: one message stored per transaction with the statement the server's
-- PostgresChatStore.appendMessage runs (same CTE, same constraints, 100-character texts).
-- scripts/bench runs it with -D chats=N; each client sends as its own user (:client_id + 1),
-- who is a member of every chat, into a random one of the N chats.
\set chat random(1, :chats)
\set sender :client_id + 1
WITH existing AS (
    SELECT id, chat_id, seq, sender_id, client_id, text, created_at FROM messages
    WHERE sender_id = :sender AND client_id = gen_random_uuid()::text
), next AS (
    UPDATE chats SET last_seq = last_seq + 1
    WHERE id = :chat
      AND NOT EXISTS (SELECT 1 FROM existing)
      AND EXISTS (SELECT 1 FROM group_members WHERE chat_id = :chat AND user_id = :sender)
    RETURNING id, last_seq
), inserted AS (
    INSERT INTO messages (chat_id, seq, sender_id, client_id, text)
    SELECT id, last_seq, :sender, gen_random_uuid()::text, repeat('x', 100) FROM next
    RETURNING id, chat_id, seq, sender_id, client_id, text, created_at
), sender_marker AS (
    UPDATE group_members SET read_seq = inserted.seq FROM inserted
    WHERE group_members.chat_id = inserted.chat_id AND group_members.user_id = inserted.sender_id
)
SELECT false, * FROM inserted
UNION ALL
SELECT true, * FROM existing;
