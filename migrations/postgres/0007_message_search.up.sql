-- Full-text search of messages (GET /search, docs/api-tour.md).
--
-- One vector handles Russian and English words alike: every word is stemmed as Russian and
-- as English, and a query matches a message when all its words match in one of the two
-- languages. Deleted messages are left out of the index, so they vanish from results.
-- Building the index reads every message once: on a large database this migration takes a
-- while, and sends wait for it.

CREATE FUNCTION message_search_vector(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN to_tsvector('russian', body) || to_tsvector('english', body);

CREATE FUNCTION message_search_query(words text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN plainto_tsquery('russian', words) || plainto_tsquery('english', words);

CREATE INDEX messages_search ON messages USING GIN (message_search_vector(text)) WHERE NOT deleted;
