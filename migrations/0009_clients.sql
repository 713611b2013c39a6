-- Clients managed at run time (admin API, CLI, dynamic registration). Static clients
-- (CLIENTS_FILE, CLIENT_CREDENTIALS) are never stored. A client is one JSON document
-- (its metadata and its secrets as SHA-256 digests or sealed values, never in clear),
-- so that metadata keys added later need no migration; version is the compare-and-set
-- counter of replace_client.
CREATE TABLE IF NOT EXISTS oauth_clients (
  client_id TEXT PRIMARY KEY NOT NULL,
  version INTEGER NOT NULL,
  document JSONB NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

-- Initial access tokens for CLIENT_REGISTRATION=token, by the SHA-256 of the token.
CREATE TABLE IF NOT EXISTS client_initial_access_tokens (
  digest TEXT PRIMARY KEY NOT NULL,
  uses_left INTEGER NOT NULL CHECK (uses_left >= 0),
  created_at BIGINT NOT NULL,
  expires_at BIGINT
);
CREATE INDEX IF NOT EXISTS client_initial_access_tokens_expires_idx
  ON client_initial_access_tokens (expires_at);
