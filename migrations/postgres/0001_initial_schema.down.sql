DROP TABLE revoked_tokens;
DROP TABLE messages;
DROP TABLE group_members;
DROP TABLE groups;
DROP TABLE chats;
DROP TABLE users;
