ALTER TABLE cluster_nodes DROP COLUMN shared_settings;
DROP TABLE generated_token_secret;
