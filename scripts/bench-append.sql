-- pgbench script: one message stored per transaction with the statement the server's
-- PostgresChatStore.appendMessages runs (same CTE, same constraints, 100-character texts),
-- here with a batch of one: what PostgreSQL sustains when every message pays its own commit.
-- scripts/bench runs it with -D chats=N; each client sends as its own user (:client_id + 1),
-- who is a member of every chat, into a random one of the N chats.
\set chat random(1, :chats)
\set sender :client_id + 1
WITH input AS (
    SELECT * FROM unnest(ARRAY[:sender]::bigint[], ARRAY[gen_random_uuid()::text], ARRAY[repeat('x', 100)])
        WITH ORDINALITY AS input(sender_id, client_id, text, position)
), existing AS (
    SELECT input.position, messages.id, messages.chat_id, messages.seq, messages.sender_id,
           messages.client_id, messages.text, messages.created_at
    FROM input JOIN messages
      ON messages.sender_id = input.sender_id AND messages.client_id = NULLIF(input.client_id, '')
), fresh AS (
    SELECT input.position, input.sender_id, NULLIF(input.client_id, '') AS client_id, input.text,
           row_number() OVER (ORDER BY input.position) AS rank
    FROM input
    WHERE input.position NOT IN (SELECT position FROM existing)
      AND input.sender_id IN (SELECT user_id FROM group_members WHERE chat_id = :chat)
), next AS (
    UPDATE chats SET last_seq = last_seq + (SELECT count(*) FROM fresh)
    WHERE id = :chat AND EXISTS (SELECT 1 FROM fresh)
    RETURNING last_seq - (SELECT count(*) FROM fresh) AS base_seq
), inserted AS (
    INSERT INTO messages (chat_id, seq, sender_id, client_id, text)
    SELECT :chat, next.base_seq + fresh.rank, fresh.sender_id, fresh.client_id, fresh.text
    FROM fresh CROSS JOIN next
    RETURNING id, chat_id, seq, sender_id, client_id, text, created_at
), sender_markers AS (
    UPDATE group_members SET read_seq = latest.seq
    FROM (SELECT sender_id, max(seq) AS seq FROM inserted GROUP BY sender_id) AS latest
    WHERE group_members.chat_id = :chat AND group_members.user_id = latest.sender_id
)
SELECT false, fresh.position, inserted.*
FROM inserted CROSS JOIN next JOIN fresh ON fresh.rank = inserted.seq - next.base_seq
UNION ALL
SELECT true, existing.* FROM existing;
