-- The database's generation: a random id, made here and replaced after every restore
-- (`chat-server database restore`, `chat-server database new-generation`). The server puts
-- it in the WebSocket `ready` frame: a client that sees it change drops its positions, because
-- a restored database hands out seqs it had handed out before, to other messages.

CREATE TABLE database_generation (
    -- One row: the constant key makes a second one impossible.
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    generation TEXT NOT NULL,
    began_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
) STRICT;

INSERT INTO database_generation (singleton, generation) VALUES (1, lower(hex(randomblob(16))));
