DROP TABLE generated_token_secret;
