-- The secret that signs session tokens when CHAT_JWT_SECRET is not set (allowed outside
-- prod): made once, here, so sessions outlive a restart of the server. 384 random bits, as 96
-- hex digits. A configured CHAT_JWT_SECRET takes precedence. (On PostgreSQL every node of a
-- cluster reads the same one.)
CREATE TABLE generated_token_secret (
    -- One row: the constant key makes a second one impossible.
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
) STRICT;

INSERT INTO generated_token_secret (singleton, secret) VALUES (1, lower(hex(randomblob(48))));
