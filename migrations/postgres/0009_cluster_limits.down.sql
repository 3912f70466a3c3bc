DROP FUNCTION claim_websocket_connection(TEXT, BIGINT, INTEGER);
DROP TABLE websocket_connections;
DROP TABLE login_failures;
