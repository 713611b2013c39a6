-- The browser session an authorization code was issued in (its public sid, for the ID
-- token's sid claim) and what that sign-in achieved (acr, and the RFC 8176 amr values,
-- space-separated). Codes written before this migration have none.
ALTER TABLE auth_codes
  ADD COLUMN IF NOT EXISTS sid TEXT,
  ADD COLUMN IF NOT EXISTS acr TEXT,
  ADD COLUMN IF NOT EXISTS amr TEXT NOT NULL DEFAULT '';
