-- Limits that hold for all nodes together, not per node (docs/security.md, "Limits").
--
-- Both tables hold short-lived facts: UNLOGGED skips the write-ahead log, so they cost no
-- fsync and no replication, and PostgreSQL empties them after a crash. Losing them then
-- forgets the last minute's failed log-ins, and the connections open at the time stop
-- counting until they close.
--
-- Failed log-ins, one row per failure and key ("account:" or "address:" and a SHA-256 digest
-- of the account as typed or of the address), judged by the database's clock so nodes whose
-- clocks differ agree. Rows older than the window are
-- swept as new failures are recorded.
CREATE UNLOGGED TABLE login_failures (
    key       TEXT NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX login_failures_key ON login_failures (key, failed_at);

CREATE INDEX login_failures_failed_at ON login_failures (failed_at);

-- Each open WebSocket connection, by node and user, for the per-user cap across the cluster.
-- A node deletes its rows as connections close, all of them when it stops, and those of its
-- earlier life when it starts; rows of a node whose heartbeat expired (it crashed) do not count.
CREATE UNLOGGED TABLE websocket_connections (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node      TEXT NOT NULL,
    user_id   BIGINT NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX websocket_connections_user ON websocket_connections (user_id);

CREATE INDEX websocket_connections_node ON websocket_connections (node);

-- Records a connection of claiming_user on claiming_node unless the user already has cap
-- connections on live nodes (this one included, even before its first heartbeat); returns the
-- new row's id, or NULL when refused. A lock per user serialises claims, and the count runs
-- after it in a statement of its own, with a snapshot that holds every claim committed before:
-- two nodes claiming the user's last connection at once cannot both get it.
CREATE FUNCTION claim_websocket_connection(claiming_node TEXT, claiming_user BIGINT, cap INTEGER)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    open_count integer;
    claimed bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(9, (claiming_user & 2147483647)::integer);
    SELECT count(*) INTO open_count
    FROM websocket_connections AS c
    WHERE c.user_id = claiming_user
      AND (c.node = claiming_node
           OR EXISTS (SELECT 1 FROM cluster_nodes AS n WHERE n.node = c.node AND n.expires_at > now()));
    IF open_count >= cap THEN
        RETURN NULL;
    END IF;
    INSERT INTO websocket_connections (node, user_id) VALUES (claiming_node, claiming_user)
    RETURNING id INTO claimed;
    RETURN claimed;
END
$$;
