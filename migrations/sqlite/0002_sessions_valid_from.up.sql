-- Tokens issued before this time (milliseconds since 1970) are no longer accepted (set when
-- the password changes).
ALTER TABLE users ADD COLUMN sessions_valid_from INTEGER;
