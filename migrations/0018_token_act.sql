-- RFC 8693 token exchange: the actors of an exchanged access token (its act claim), by
-- client id, space-separated, the current actor first (a client id holds no space).
-- Tokens that were not exchanged, and rows written before this migration, have none.
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS act TEXT NOT NULL DEFAULT '';
