-- Browser sessions of single sign-on (domain/sessions.py), keyed by the SHA-256 (hex) of
-- the cookie value; sid is the public name (ID and logout tokens, the admin API). A
-- session is live while now < idle_exp and now < exp; live_until is the earlier of the
-- two, kept by PostgreSQL, so that the lookup, the count and the purge each compare one
-- indexed column. amr and clients are arrays in order (clients: first code first).
--
-- Keys and ordered columns use the "C" collation: byte order of UTF-8, which is the
-- code-point order the other backends sort by (list_sessions ties by sid, list_consents by
-- client_id, consent grants by grant_id), whatever the database's default locale; it is
-- also the cheapest to compare.
CREATE TABLE IF NOT EXISTS sessions (
  id_hash TEXT COLLATE "C" PRIMARY KEY NOT NULL,
  sid TEXT COLLATE "C" NOT NULL,
  user_id TEXT COLLATE "C" NOT NULL,
  auth_time BIGINT NOT NULL,
  amr TEXT[] NOT NULL,
  acr TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  idle_exp BIGINT NOT NULL,
  exp BIGINT NOT NULL,
  clients TEXT[] NOT NULL DEFAULT '{}',
  live_until BIGINT GENERATED ALWAYS AS (LEAST(idle_exp, exp)) STORED,
  CONSTRAINT sessions_sid_key UNIQUE (sid)
);
-- list_sessions and end_user_sessions: a user's sessions in their listed order.
CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON sessions (user_id, created_at, sid);
-- Purge and counts by expiry (an index-only range scan).
CREATE INDEX IF NOT EXISTS sessions_live_until_idx ON sessions (live_until);

-- The grants issued in a session (one per authorization code), removed with it; position
-- keeps the order they were recorded in.
CREATE TABLE IF NOT EXISTS session_grants (
  id_hash TEXT COLLATE "C" NOT NULL REFERENCES sessions (id_hash) ON DELETE CASCADE,
  client_id TEXT COLLATE "C" NOT NULL,
  grant_id TEXT COLLATE "C" NOT NULL,
  position BIGINT GENERATED ALWAYS AS IDENTITY,
  PRIMARY KEY (id_hash, client_id, grant_id)
);

-- What a user allowed a client that is not first_party (domain/consent.py): one row per
-- (user, client), scopes sorted without duplicates.
CREATE TABLE IF NOT EXISTS consents (
  user_id TEXT COLLATE "C" NOT NULL,
  client_id TEXT COLLATE "C" NOT NULL,
  scopes TEXT[] COLLATE "C" NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, client_id)
);

-- The grants issued under a consent, until exp (the grant's absolute lifetime), so that
-- withdrawing the consent revokes them; removed with the consent.
CREATE TABLE IF NOT EXISTS consent_grants (
  user_id TEXT COLLATE "C" NOT NULL,
  client_id TEXT COLLATE "C" NOT NULL,
  grant_id TEXT COLLATE "C" NOT NULL,
  exp BIGINT NOT NULL,
  PRIMARY KEY (user_id, client_id, grant_id),
  CONSTRAINT consent_grants_consent_fkey FOREIGN KEY (user_id, client_id)
    REFERENCES consents (user_id, client_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS consent_grants_exp_idx ON consent_grants (exp);
