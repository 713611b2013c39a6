-- Accounts people run themselves (issue 17): the verified email, passkeys, recovery codes
-- and the single-use links mailed for a password reset or an email verification.

-- The address (lower-cased) the user proved by a verification link; NULL: none. Existing
-- rows get NULL: no address was ever proved before this migration.
ALTER TABLE user_credentials ADD COLUMN IF NOT EXISTS verified_email TEXT;

-- WebAuthn credentials. credential_id and public_key (COSE) are base64url; the id is
-- unique across all users. sign_count is the authenticator's counter as last accepted
-- (0: it keeps none). synced is the backup-eligible flag (amr swk rather than hwk).
-- The keys use the "C" collation, so that a user's passkeys sort as the other backends
-- sort them (code-point order).
CREATE TABLE IF NOT EXISTS passkeys (
  credential_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  public_key TEXT NOT NULL,
  sign_count BIGINT NOT NULL DEFAULT 0,
  transports TEXT[] NOT NULL DEFAULT '{}',
  name TEXT NOT NULL,
  synced BOOLEAN NOT NULL DEFAULT false,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT
);
-- list_passkeys reads a user's passkeys in this order, and an MFA reset deletes by user.
CREATE INDEX IF NOT EXISTS passkeys_user_id_idx ON passkeys (user_id, created_at, credential_id);

-- Unused recovery codes, as the SHA-256 hex of each; a use deletes its row.
CREATE TABLE IF NOT EXISTS recovery_codes (
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  code_hash TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (user_id, code_hash)
);

-- Password-reset and email-verification links, by the SHA-256 hex of their secret. A row
-- past exp reads as absent everywhere and is purged. No foreign key to users: the port
-- keeps these apart from identities (the use case checks the user when a link is used).
CREATE TABLE IF NOT EXISTS account_tokens (
  token_hash TEXT COLLATE "C" PRIMARY KEY NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('password_reset', 'email_verification')),
  user_id TEXT NOT NULL,
  email TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  exp BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS account_tokens_user_id_kind_idx ON account_tokens (user_id, kind);
CREATE INDEX IF NOT EXISTS account_tokens_exp_idx ON account_tokens (exp);
