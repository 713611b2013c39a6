-- Secrets that let a user sign in, apart from the SCIM attributes so that no list query
-- ever reads them. argon2id PHC string; base32 TOTP seed.
CREATE TABLE IF NOT EXISTS user_credentials (
  user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  password_hash TEXT,
  totp_secret TEXT,
  totp_confirmed BOOLEAN NOT NULL DEFAULT false
);
