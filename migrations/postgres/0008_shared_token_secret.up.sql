-- Nodes that cannot be half-configured (docs/scaling.md, "Settings every node shares").
--
-- The secret that signs session tokens when CHAT_JWT_SECRET is not set (allowed outside
-- prod): made once, here, under the migrations' advisory lock, and read by every node at
-- start, so nodes started the README's way accept each other's tokens. 366 random bits from
-- three version-4 UUIDs, as 96 hex digits. A configured CHAT_JWT_SECRET takes precedence.
CREATE TABLE generated_token_secret (
    -- One row: the constant key makes a second one impossible.
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    secret     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO generated_token_secret (secret)
VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

-- Each node's settings that must match the others' (a fingerprint of its token key, never
-- the key, its token lifetime and its password hashing), published with its heartbeat: a
-- node that differs from another is not ready, and says which settings differ.
ALTER TABLE cluster_nodes ADD COLUMN shared_settings TEXT NOT NULL DEFAULT '';
