-- Who added or removed whom, and where in the chat's messages: what the web client shows as
-- "Sergey removed Arina" among the messages, also after a reload.

CREATE TABLE membership_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id    INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('added', 'removed')),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Null when no member did it (an administrator's tool, the database itself).
    actor_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    -- The chat's last seq when it happened: the event shows after that message.
    after_seq  INTEGER NOT NULL CHECK (after_seq >= 0),
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
) STRICT;

CREATE INDEX membership_events_chat_after_seq ON membership_events (chat_id, after_seq);
