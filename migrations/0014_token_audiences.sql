-- RFC 8707 resource indicators: the resource servers a grant is bound to (on codes and
-- refresh tokens) and an access token's audience (its aud), each as space-separated
-- absolute URIs (a URI holds no space). Rows written before this migration have none.
ALTER TABLE auth_codes ADD COLUMN IF NOT EXISTS resources TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS audience TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS resources TEXT NOT NULL DEFAULT '';
