DROP TRIGGER messages_notify_committed ON messages;
DROP FUNCTION notify_committed_messages();
DROP TABLE cluster_nodes;
