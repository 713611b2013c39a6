-- Signing in again re-keys a session (a new cookie value, so a copy of the old one gains
-- nothing the user proved since): the UPDATE of sessions.id_hash carries the session's
-- grants with it in the same statement.
ALTER TABLE session_grants
  DROP CONSTRAINT IF EXISTS session_grants_id_hash_fkey,
  ADD CONSTRAINT session_grants_id_hash_fkey FOREIGN KEY (id_hash)
    REFERENCES sessions (id_hash) ON UPDATE CASCADE ON DELETE CASCADE;
