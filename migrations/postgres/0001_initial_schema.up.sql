-- Users, chats (with the original service's Group model), members with read markers,
-- messages with a per-chat gap-free seq, and the token deny-list.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT NOT NULL,
    -- Case-folded name and email, computed by the server; "C" collation makes prefix
    -- search a plain index range.
    name_key      TEXT COLLATE "C" NOT NULL,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_name_key_unique UNIQUE (name_key),
    CONSTRAINT users_email_key_unique UNIQUE (email_key)
);

CREATE TABLE chats (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL,
    chat_type  TEXT NOT NULL CHECK (chat_type IN ('PRIVATE', 'GROUP')),
    -- seq of the newest message; the next message takes last_seq + 1 under this row's lock.
    last_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One group per chat: its creator, and through group_members its participants.
CREATE TABLE groups (
    chat_id    BIGINT PRIMARY KEY REFERENCES chats (id) ON DELETE CASCADE,
    creator_id BIGINT NOT NULL REFERENCES users (id)
);

CREATE TABLE group_members (
    chat_id   BIGINT NOT NULL REFERENCES groups (chat_id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The member has read every message with seq <= read_seq.
    read_seq  BIGINT NOT NULL DEFAULT 0 CHECK (read_seq >= 0),
    joined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, user_id)
);

CREATE INDEX group_members_user_id ON group_members (user_id);

CREATE TABLE messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id    BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL CHECK (seq >= 1),
    sender_id  BIGINT NOT NULL REFERENCES users (id),
    client_id  TEXT,
    text       TEXT NOT NULL,
    -- clock_timestamp(), not now(): taken after the chat row's lock, so it follows seq.
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT messages_chat_seq_unique UNIQUE (chat_id, seq),
    CONSTRAINT messages_sender_client_unique UNIQUE (sender_id, client_id)
);

CREATE TABLE revoked_tokens (
    token_id   TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
