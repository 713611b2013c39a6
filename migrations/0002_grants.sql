-- Grant (family) ids, so that a replayed code or a reused refresh token can revoke every
-- token descended from the same grant; and what a rotation needs to issue the next pair.
-- The columns are nullable because rows written before this migration have no value.
ALTER TABLE tokens
  ADD COLUMN IF NOT EXISTS grant_id TEXT,
  ADD COLUMN IF NOT EXISTS auth_time BIGINT;

ALTER TABLE refresh_tokens
  ADD COLUMN IF NOT EXISTS grant_id TEXT,
  ADD COLUMN IF NOT EXISTS client_id TEXT,
  ADD COLUMN IF NOT EXISTS scope TEXT,
  ADD COLUMN IF NOT EXISTS sub TEXT,
  ADD COLUMN IF NOT EXISTS mfa_verified BOOLEAN NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS iat BIGINT,
  ADD COLUMN IF NOT EXISTS auth_time BIGINT;

ALTER TABLE refresh_token_reuse
  ADD COLUMN IF NOT EXISTS grant_id TEXT;

ALTER TABLE auth_codes
  ADD COLUMN IF NOT EXISTS grant_id TEXT,
  ADD COLUMN IF NOT EXISTS auth_time BIGINT,
  ADD COLUMN IF NOT EXISTS mfa_verified BOOLEAN NOT NULL DEFAULT false;
