-- Several nodes share this database (docs/scaling.md).
--
-- Each node's heartbeat, with the users it holds connections of. A node whose heartbeat has
-- expired is gone, and so is its users' presence; presence_version orders the row against the
-- node's presence notifications.
CREATE TABLE cluster_nodes (
    node TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL,
    presence_version BIGINT NOT NULL,
    online_users BIGINT[] NOT NULL
);

-- Every committing statement that stores messages sends one notification on the channel
-- chat_cluster, delivered at commit: the node that wrote them (the connection's
-- application_name), a line break, and "commits " with each chat's new last seq, as in
-- "node1\ncommits 7:42 8:13". A statement that touches more than 100 chats lists none
-- ("all chats"), which keeps the payload far below PostgreSQL's 8000 bytes: every node then
-- checks all the chats it follows.
--
-- A notifying commit takes a lock that every other notifying commit waits for, so a node
-- with no other node alive (no unexpired heartbeat but its own) does not notify. A node
-- records its heartbeat before it listens, and catches up once it listens.
CREATE FUNCTION notify_committed_messages() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chat_count integer;
    commits text;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM cluster_nodes
        WHERE expires_at > now() AND node <> current_setting('application_name')
    ) THEN
        RETURN NULL;
    END IF;
    SELECT count(*), string_agg(chat_id || ':' || seq, ' ') INTO chat_count, commits
    FROM (SELECT chat_id, max(seq) AS seq FROM inserted GROUP BY chat_id) AS latest;
    IF chat_count = 0 THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('chat_cluster', current_setting('application_name') || E'\n'
        || CASE WHEN chat_count <= 100 THEN 'commits ' || commits ELSE 'all chats' END);
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_notify_committed AFTER INSERT ON messages REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION notify_committed_messages();
