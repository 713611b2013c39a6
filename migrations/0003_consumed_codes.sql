-- Tombstones of consumed authorization codes (by SHA-256 hash, like auth_codes.code), kept
-- for a while so that a replayed code is recognised and its grant revoked.
CREATE TABLE IF NOT EXISTS consumed_codes (
  code TEXT PRIMARY KEY NOT NULL,
  grant_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  exp BIGINT NOT NULL
);
