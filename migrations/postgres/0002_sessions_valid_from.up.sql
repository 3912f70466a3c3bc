-- Tokens issued before this time are no longer accepted (set when the password changes).
ALTER TABLE users ADD COLUMN sessions_valid_from TIMESTAMPTZ;
