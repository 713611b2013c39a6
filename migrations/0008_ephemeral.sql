-- Small shared state with a lifetime: single-use claims (TOTP replay, locks) and
-- fixed-window rate-limit counters. Rows past exp read as absent and are purged.
CREATE TABLE IF NOT EXISTS ephemeral_claims (
  key TEXT PRIMARY KEY NOT NULL,
  exp BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ephemeral_claims_exp_idx ON ephemeral_claims (exp);

CREATE TABLE IF NOT EXISTS ephemeral_counters (
  key TEXT PRIMARY KEY NOT NULL,
  window_start BIGINT NOT NULL,
  value BIGINT NOT NULL,
  exp BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ephemeral_counters_exp_idx ON ephemeral_counters (exp);
