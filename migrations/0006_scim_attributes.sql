-- SCIM attributes of users and groups. Times are Unix seconds, like every other column.
-- emails is a JSON array of {"value", "type", "primary"} objects.
ALTER TABLE users
  ADD COLUMN IF NOT EXISTS external_id TEXT,
  ADD COLUMN IF NOT EXISTS display_name TEXT,
  ADD COLUMN IF NOT EXISTS given_name TEXT,
  ADD COLUMN IF NOT EXISTS family_name TEXT,
  ADD COLUMN IF NOT EXISTS formatted_name TEXT,
  ADD COLUMN IF NOT EXISTS emails JSONB NOT NULL DEFAULT '[]'::jsonb,
  ADD COLUMN IF NOT EXISTS created BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS last_modified BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS version INTEGER NOT NULL DEFAULT 1;

ALTER TABLE groups
  ADD COLUMN IF NOT EXISTS external_id TEXT,
  ADD COLUMN IF NOT EXISTS created BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS last_modified BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS version INTEGER NOT NULL DEFAULT 1;

-- Members keep the order and type they were given in.
ALTER TABLE group_members
  ADD COLUMN IF NOT EXISTS position INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS member_type TEXT NOT NULL DEFAULT 'User';
