-- pgbench script: what NOTIFY costs a commit. Each transaction updates :batch rows of the
-- client's own (standing for :batch messages stored at once) and, with -D notify=1, sends one
-- notification, as the messages trigger does per committing statement (migration 0003).
-- scripts/bench runs it with and without the notification, for batches of 1 and 10.
\set first :client_id * 1000 + 1
\set last :first + :batch - 1
BEGIN;
UPDATE notify_bench SET n = n + 1 WHERE id BETWEEN :first AND :last;
\if :notify
SELECT pg_notify('chat_bench', 'chat 1 up to seq 1');
\endif
COMMIT;
