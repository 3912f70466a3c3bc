-- Full-text search of messages (GET /search, docs/api-tour.md): an FTS5 index over the
-- messages' text, kept by triggers. Words are folded (case, diacritics) as Unicode says, and
-- English words are stemmed (porter). Deleted messages are left out, so they vanish from
-- results; an edit replaces the indexed text.

CREATE VIRTUAL TABLE messages_search USING fts5(
    text, content = 'messages', content_rowid = 'id', tokenize = 'porter unicode61 remove_diacritics 2'
);

INSERT INTO messages_search (rowid, text) SELECT id, text FROM messages WHERE deleted = 0;

-- Each trigger is one statement; its body's own statements end mid-line (migrations/README.md).
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages WHEN new.deleted = 0
BEGIN INSERT INTO messages_search (rowid, text) VALUES (new.id, new.text); END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF text, deleted ON messages
BEGIN INSERT INTO messages_search (messages_search, rowid, text) SELECT 'delete', old.id, old.text WHERE old.deleted = 0; INSERT INTO messages_search (rowid, text) SELECT new.id, new.text WHERE new.deleted = 0; END;

CREATE TRIGGER messages_search_delete AFTER DELETE ON messages WHEN old.deleted = 0
BEGIN INSERT INTO messages_search (messages_search, rowid, text) VALUES ('delete', old.id, old.text); END;
