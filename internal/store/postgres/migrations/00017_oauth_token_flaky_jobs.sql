-- +goose Up
-- A GitLab sign-in's OAuth token (issue 14), sealed (AES-256-GCM; nonce
-- then ciphertext) under the secret key whose id is beside it, so that
-- the session survives a restart and moves between replicas. Empty when
-- no key is configured: the token is then in the memory of the process
-- that signed in only.
ALTER TABLE sessions ADD COLUMN token_key text NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN token_sealed bytea NOT NULL DEFAULT '\x';

-- +goose Down
ALTER TABLE sessions DROP COLUMN token_sealed;
ALTER TABLE sessions DROP COLUMN token_key;
