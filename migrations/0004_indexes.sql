-- Purge scans by exp; family revocation by grant_id; subject revocation by sub.
CREATE INDEX IF NOT EXISTS auth_codes_exp_idx ON auth_codes (exp);
CREATE INDEX IF NOT EXISTS consumed_codes_exp_idx ON consumed_codes (exp);
CREATE INDEX IF NOT EXISTS tokens_exp_idx ON tokens (exp);
CREATE INDEX IF NOT EXISTS tokens_grant_id_idx ON tokens (grant_id);
CREATE INDEX IF NOT EXISTS tokens_sub_idx ON tokens (sub);
CREATE INDEX IF NOT EXISTS refresh_tokens_exp_idx ON refresh_tokens (exp);
CREATE INDEX IF NOT EXISTS refresh_tokens_grant_id_idx ON refresh_tokens (grant_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_sub_idx ON refresh_tokens (sub);
CREATE INDEX IF NOT EXISTS refresh_token_reuse_exp_idx ON refresh_token_reuse (exp);
CREATE INDEX IF NOT EXISTS refresh_token_reuse_grant_id_idx ON refresh_token_reuse (grant_id);
-- Memberships are read from the user's side too (User.groups, cascade on user delete).
CREATE INDEX IF NOT EXISTS group_members_user_id_idx ON group_members (user_id);
