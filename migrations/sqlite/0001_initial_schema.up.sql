-- The same schema as migrations/postgres/0001, in SQLite's dialect. Times are integer
-- Unix milliseconds; AUTOINCREMENT keeps ids from ever being reused.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    CONSTRAINT users_name_key_unique UNIQUE (name_key),
    CONSTRAINT users_email_key_unique UNIQUE (email_key)
) STRICT;

CREATE TABLE chats (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    chat_type  TEXT NOT NULL CHECK (chat_type IN ('PRIVATE', 'GROUP')),
    last_seq   INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
) STRICT;

CREATE TABLE groups (
    chat_id    INTEGER PRIMARY KEY REFERENCES chats (id) ON DELETE CASCADE,
    creator_id INTEGER NOT NULL REFERENCES users (id)
) STRICT;

CREATE TABLE group_members (
    chat_id   INTEGER NOT NULL REFERENCES groups (chat_id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_seq  INTEGER NOT NULL DEFAULT 0 CHECK (read_seq >= 0),
    joined_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    PRIMARY KEY (chat_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX group_members_user_id ON group_members (user_id);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id    INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    sender_id  INTEGER NOT NULL REFERENCES users (id),
    client_id  TEXT,
    text       TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    CONSTRAINT messages_chat_seq_unique UNIQUE (chat_id, seq),
    CONSTRAINT messages_sender_client_unique UNIQUE (sender_id, client_id)
) STRICT;

CREATE TABLE revoked_tokens (
    token_id   TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
