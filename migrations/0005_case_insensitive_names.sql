-- SCIM userName and displayName are caseExact: false, so uniqueness is case-insensitive.
-- The original UNIQUE constraints stay (SPEC section 4 is never changed); these are stricter.
-- lower() under the ICU root collation folds case the way Unicode (and Python) does,
-- whatever the database's own locale is ("C" would fold ASCII only). The adapter uses the
-- very same expression in its lookups, so these indexes serve them.
CREATE UNIQUE INDEX IF NOT EXISTS users_user_name_lower_key ON users (lower(user_name COLLATE "und-x-icu"));
CREATE UNIQUE INDEX IF NOT EXISTS groups_display_name_lower_key ON groups (lower(display_name COLLATE "und-x-icu"));
