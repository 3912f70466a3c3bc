-- The database's generation: a random id, made here and replaced after every restore
-- (`chat-server database new-generation`). The server puts it in the WebSocket `ready`
-- frame: a client that sees it change drops its positions, because a restored database hands
-- out seqs it had handed out before, to other messages.

CREATE TABLE database_generation (
    -- One row: the constant key makes a second one impossible.
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    generation TEXT NOT NULL,
    began_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO database_generation (generation) VALUES (replace(gen_random_uuid()::text, '-', ''));
