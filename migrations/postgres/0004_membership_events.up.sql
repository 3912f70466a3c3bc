-- Who added or removed whom, and where in the chat's messages: what the web client shows as
-- "Sergey removed Arina" among the messages, also after a reload.

CREATE TABLE membership_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id    BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('added', 'removed')),
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Null when no member did it (an administrator's tool, the database itself).
    actor_id   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- The chat's last seq when it happened: the event shows after that message.
    after_seq  BIGINT NOT NULL CHECK (after_seq >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX membership_events_chat_after_seq ON membership_events (chat_id, after_seq);
