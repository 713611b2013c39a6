-- Sorted SCIM lists (sortBy, RFC 7644 3.4.2.3) read a page in index order. Each index holds
-- exactly the adapter's ORDER BY expressions (adapters/sql/sorting.py): the sort key, then
-- id in code-point order for ties; descending sorts scan the same index backwards.
CREATE INDEX IF NOT EXISTS users_sort_user_name_idx
  ON users ((lower(user_name COLLATE "und-x-icu") COLLATE "C"), (id COLLATE "C"));
CREATE INDEX IF NOT EXISTS users_sort_created_idx ON users (created, (id COLLATE "C"));
CREATE INDEX IF NOT EXISTS users_sort_last_modified_idx ON users (last_modified, (id COLLATE "C"));
CREATE INDEX IF NOT EXISTS groups_sort_display_name_idx
  ON groups ((lower(display_name COLLATE "und-x-icu") COLLATE "C"), (id COLLATE "C"));
CREATE INDEX IF NOT EXISTS groups_sort_created_idx ON groups (created, (id COLLATE "C"));
CREATE INDEX IF NOT EXISTS groups_sort_last_modified_idx ON groups (last_modified, (id COLLATE "C"));
-- The unsorted order (by id in code-point order) too: the primary key uses the database's
-- default collation, which is not code-point order under most locales.
CREATE INDEX IF NOT EXISTS users_sort_id_idx ON users ((id COLLATE "C"));
CREATE INDEX IF NOT EXISTS groups_sort_id_idx ON groups ((id COLLATE "C"));

-- A PATCH "remove" of active leaves it unassigned (RFC 7644 3.5.2.2). users.active stays
-- NOT NULL (SPEC section 4 never changes); an unassigned one is stored as active = false
-- with active_assigned = false, and reads as no value (which never signs in).
ALTER TABLE users ADD COLUMN IF NOT EXISTS active_assigned BOOLEAN NOT NULL DEFAULT true;
