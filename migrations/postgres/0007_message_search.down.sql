DROP INDEX messages_search;
DROP FUNCTION message_search_query(text);
DROP FUNCTION message_search_vector(text);
