-- The remaining SCIM core User attributes and the enterprise User extension (RFC 7643
-- sections 4.1 and 4.3), as Entra ID and Okta send them. Multi-valued attributes are JSON
-- arrays of objects, like emails; their keys are the entity's field names
-- (street_address, postal_code, ...), with primary left out when false.
ALTER TABLE users
  ADD COLUMN IF NOT EXISTS middle_name TEXT,
  ADD COLUMN IF NOT EXISTS honorific_prefix TEXT,
  ADD COLUMN IF NOT EXISTS honorific_suffix TEXT,
  ADD COLUMN IF NOT EXISTS nick_name TEXT,
  ADD COLUMN IF NOT EXISTS profile_url TEXT,
  ADD COLUMN IF NOT EXISTS title TEXT,
  ADD COLUMN IF NOT EXISTS user_type TEXT,
  ADD COLUMN IF NOT EXISTS preferred_language TEXT,
  ADD COLUMN IF NOT EXISTS locale TEXT,
  ADD COLUMN IF NOT EXISTS timezone TEXT,
  ADD COLUMN IF NOT EXISTS phone_numbers JSONB NOT NULL DEFAULT '[]'::jsonb,
  ADD COLUMN IF NOT EXISTS addresses JSONB NOT NULL DEFAULT '[]'::jsonb,
  ADD COLUMN IF NOT EXISTS photos JSONB NOT NULL DEFAULT '[]'::jsonb,
  ADD COLUMN IF NOT EXISTS x509_certificates JSONB NOT NULL DEFAULT '[]'::jsonb,
  ADD COLUMN IF NOT EXISTS employee_number TEXT,
  ADD COLUMN IF NOT EXISTS cost_center TEXT,
  ADD COLUMN IF NOT EXISTS organization TEXT,
  ADD COLUMN IF NOT EXISTS division TEXT,
  ADD COLUMN IF NOT EXISTS department TEXT,
  ADD COLUMN IF NOT EXISTS manager_id TEXT;

-- HR-driven provisioning looks users up by employee number (case-insensitively, with the
-- filter's own expression); reads join a user to its manager, and the manager's reports
-- are found by manager_id.
CREATE INDEX IF NOT EXISTS users_employee_number_lower_idx
  ON users (lower(employee_number COLLATE "und-x-icu"));
CREATE INDEX IF NOT EXISTS users_manager_id_idx ON users (manager_id);

-- Big groups: members are read in order, a page at a time, and a new member goes after
-- the last one (max(position) from this index, not from a scan of the group).
CREATE INDEX IF NOT EXISTS group_members_group_position_idx
  ON group_members (group_id, position);
