-- Device authorizations of the device authorization grant (RFC 8628), by the SHA-256 of
-- the device code. The SHA-256 of the user code is unique: a save first deletes an
-- expired row holding either code, so only live rows ever compete for one. A row past exp
-- reads as absent everywhere and is purged. resources are the RFC 8707 resources asked
-- for; user_id, auth_time, amr, acr and sid say who approved and how they signed in;
-- last_poll (0: never) and poll_interval are the device's polling state (slow_down).
CREATE TABLE IF NOT EXISTS device_authorizations (
  device_code_hash TEXT PRIMARY KEY NOT NULL,
  user_code_hash TEXT NOT NULL,
  client_id TEXT NOT NULL,
  scope TEXT NOT NULL,
  resources TEXT[] NOT NULL DEFAULT '{}',
  exp BIGINT NOT NULL,
  poll_interval INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'approved', 'denied')),
  last_poll BIGINT NOT NULL DEFAULT 0,
  user_id TEXT,
  auth_time BIGINT,
  amr TEXT[] NOT NULL DEFAULT '{}',
  acr TEXT,
  sid TEXT,
  CONSTRAINT device_authorizations_user_code_hash_key UNIQUE (user_code_hash)
);
CREATE INDEX IF NOT EXISTS device_authorizations_exp_idx ON device_authorizations (exp);
