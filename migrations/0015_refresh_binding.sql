-- The DPoP key a public client's refresh token is bound to (RFC 9449 section 5): "jkt:"
-- and the key's RFC 7638 thumbprint, as in tokens.token_binding. Rows written before this
-- migration are unbound.
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS token_binding TEXT;
