"""The migrated schema contains SPEC section 4 exactly: column by column, with the keys.

Later migrations may add tables, columns and indexes; they must not change a column of
section 4. So this compares every section 4 column (type, nullability, default), and
primary, unique and foreign keys, with ``information_schema`` of a database at head.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from migrations.runner import asyncpg_dsn

pytestmark = pytest.mark.postgres

# (table, column): (data_type, is_nullable, column_default)
SPEC_COLUMNS: dict[tuple[str, str], tuple[str, str, str | None]] = {
    ("users", "id"): ("text", "NO", None),
    ("users", "user_name"): ("text", "NO", None),
    ("users", "active"): ("boolean", "NO", "true"),
    ("groups", "id"): ("text", "NO", None),
    ("groups", "display_name"): ("text", "NO", None),
    ("group_members", "group_id"): ("text", "NO", None),
    ("group_members", "user_id"): ("text", "NO", None),
    ("auth_codes", "code"): ("text", "NO", None),
    ("auth_codes", "client_id"): ("text", "NO", None),
    ("auth_codes", "redirect_uri"): ("text", "NO", None),
    ("auth_codes", "nonce"): ("text", "YES", None),
    ("auth_codes", "scope"): ("text", "NO", None),
    ("auth_codes", "pkce_challenge"): ("text", "YES", None),
    ("auth_codes", "pkce_method"): ("text", "YES", None),
    ("auth_codes", "user_id"): ("text", "YES", None),
    ("auth_codes", "exp"): ("bigint", "NO", None),
    ("tokens", "token_hash"): ("text", "NO", None),
    ("tokens", "token_display"): ("text", "NO", None),
    ("tokens", "active"): ("boolean", "NO", None),
    ("tokens", "scope"): ("text", "YES", None),
    ("tokens", "client_id"): ("text", "YES", None),
    ("tokens", "exp"): ("bigint", "YES", None),
    ("tokens", "iat"): ("bigint", "YES", None),
    ("tokens", "sub"): ("text", "YES", None),
    ("tokens", "token_binding"): ("text", "YES", None),
    ("tokens", "mfa_verified"): ("boolean", "NO", "false"),
    ("refresh_tokens", "refresh_token_hash"): ("text", "NO", None),
    ("refresh_tokens", "access_token_hash"): ("text", "NO", None),
    ("refresh_tokens", "exp"): ("bigint", "NO", None),
    ("refresh_token_reuse", "refresh_token_hash"): ("text", "NO", None),
    ("refresh_token_reuse", "exp"): ("bigint", "NO", None),
}

SPEC_PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("id",),
    "groups": ("id",),
    "group_members": ("group_id", "user_id"),
    "auth_codes": ("code",),
    "tokens": ("token_hash",),
    "refresh_tokens": ("refresh_token_hash",),
    "refresh_token_reuse": ("refresh_token_hash",),
}

SPEC_UNIQUE: set[tuple[str, tuple[str, ...]]] = {
    ("users", ("user_name",)),
    ("groups", ("display_name",)),
}

# (table, column) -> (referenced table, referenced column, delete rule)
SPEC_FOREIGN_KEYS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("group_members", "group_id"): ("groups", "id", "CASCADE"),
    ("group_members", "user_id"): ("users", "id", "CASCADE"),
}

_CONSTRAINT_COLUMNS = """
SELECT tc.table_name, tc.constraint_name, kcu.column_name, kcu.ordinal_position
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage kcu
  ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
WHERE tc.table_schema = 'public' AND tc.constraint_type = $1
ORDER BY tc.table_name, tc.constraint_name, kcu.ordinal_position
"""


async def _fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def _grouped(rows: list[asyncpg.Record]) -> set[tuple[str, tuple[str, ...]]]:
    found: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        found.setdefault((row["table_name"], row["constraint_name"]), []).append(
            row["column_name"]
        )
    return {(table, tuple(columns)) for (table, _), columns in found.items()}


async def test_every_spec_column_has_its_type_nullability_and_default(
    migrated_database_url: str,
) -> None:
    rows = await _fetch(
        migrated_database_url,
        "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = 'public'",
    )
    actual = {
        (r["table_name"], r["column_name"]): (r["data_type"], r["is_nullable"], r["column_default"])
        for r in rows
    }
    for key, expected in SPEC_COLUMNS.items():
        assert actual.get(key) == expected, f"{key[0]}.{key[1]}"


async def test_primary_keys_are_those_of_the_spec(migrated_database_url: str) -> None:
    rows = await _fetch(migrated_database_url, _CONSTRAINT_COLUMNS, "PRIMARY KEY")
    primary = dict(_grouped(rows))
    for table, columns in SPEC_PRIMARY_KEYS.items():
        assert primary.get(table) == columns, table


async def test_unique_constraints_of_the_spec_exist(migrated_database_url: str) -> None:
    rows = await _fetch(migrated_database_url, _CONSTRAINT_COLUMNS, "UNIQUE")
    assert _grouped(rows) >= SPEC_UNIQUE


async def test_foreign_keys_of_the_spec_cascade(migrated_database_url: str) -> None:
    rows = await _fetch(
        migrated_database_url,
        """
        SELECT kcu.table_name, kcu.column_name, ccu.table_name AS ref_table,
               ccu.column_name AS ref_column, rc.delete_rule
        FROM information_schema.referential_constraints rc
        JOIN information_schema.key_column_usage kcu
          ON kcu.constraint_name = rc.constraint_name AND kcu.table_schema = 'public'
        JOIN information_schema.constraint_column_usage ccu
          ON ccu.constraint_name = rc.constraint_name AND ccu.table_schema = 'public'
        """,
    )
    actual = {
        (r["table_name"], r["column_name"]): (r["ref_table"], r["ref_column"], r["delete_rule"])
        for r in rows
    }
    for key, expected in SPEC_FOREIGN_KEYS.items():
        assert actual.get(key) == expected, f"{key[0]}.{key[1]}"


async def test_first_migration_alone_creates_exactly_the_spec_tables_and_columns(
    empty_database_url: str,
) -> None:
    from migrations.runner import load_migrations

    first = load_migrations()[0]
    conn = await asyncpg.connect(asyncpg_dsn(empty_database_url))
    try:
        await conn.execute(first.sql)
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    actual = {
        (r["table_name"], r["column_name"]): (r["data_type"], r["is_nullable"], r["column_default"])
        for r in rows
    }
    assert actual == SPEC_COLUMNS


async def test_case_insensitive_unique_indexes_exist(migrated_database_url: str) -> None:
    rows = await _fetch(
        migrated_database_url,
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    )
    definitions = {r["indexname"]: r["indexdef"] for r in rows}
    assert "UNIQUE" in definitions["users_user_name_lower_key"]
    assert "lower(" in definitions["users_user_name_lower_key"]
    assert "UNIQUE" in definitions["groups_display_name_lower_key"]
    for index in ("tokens_exp_idx", "tokens_grant_id_idx", "refresh_tokens_grant_id_idx",
                  "auth_codes_exp_idx", "refresh_token_reuse_exp_idx", "tokens_sub_idx"):
        assert index in definitions


def _declared_type(column: sa.Column[Any]) -> str:
    """``information_schema.columns.data_type`` of a column of ``adapters/sql/tables.py``."""
    return {
        sa.Text: "text", sa.BigInteger: "bigint", sa.Integer: "integer",
        sa.Boolean: "boolean", JSONB: "jsonb", ARRAY: "ARRAY",
    }[type(column.type)]


async def test_the_tables_the_adapter_declares_are_those_the_migrations_create(
    migrated_database_url: str,
) -> None:
    # adapters/sql/tables.py builds every statement; a column it names that the migrations
    # do not create (or with another type, nullability, collation or key) fails at run time.
    from adapters.sql.tables import metadata

    columns = await _fetch(
        migrated_database_url,
        "SELECT table_name, column_name, data_type, is_nullable, collation_name, "
        "is_generated FROM information_schema.columns WHERE table_schema = 'public'",
    )
    actual = {(r["table_name"], r["column_name"]): r for r in columns}
    primary = dict(_grouped(await _fetch(migrated_database_url, _CONSTRAINT_COLUMNS,
                                         "PRIMARY KEY")))
    for table in metadata.sorted_tables:
        created = {name for t, name in actual if t == table.name}
        assert created == {c.name for c in table.columns}, table.name
        for column in table.columns:
            row = actual[(table.name, column.name)]
            where = f"{table.name}.{column.name}"
            assert row["data_type"] == _declared_type(column), where
            assert (row["is_nullable"] == "YES") == column.nullable, where
            text = getattr(column.type, "item_type", column.type)  # an array's: its items'
            assert row["collation_name"] == getattr(text, "collation", None), where
            assert (row["is_generated"] == "ALWAYS") == (column.computed is not None), where
        assert primary[table.name] == tuple(c.name for c in table.primary_key.columns), \
            table.name


async def test_device_authorizations_keep_one_row_per_user_code_and_an_exp_index(
    migrated_database_url: str,
) -> None:
    rows = await _fetch(
        migrated_database_url,
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'device_authorizations'",
    )
    definitions = {r["indexname"]: r["indexdef"] for r in rows}
    assert "UNIQUE" in definitions["device_authorizations_user_code_hash_key"]
    assert "(exp)" in definitions["device_authorizations_exp_idx"]


async def test_passkeys_and_account_tokens_have_their_lookup_and_purge_indexes(
    migrated_database_url: str,
) -> None:
    rows = await _fetch(
        migrated_database_url,
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE tablename IN ('passkeys', 'recovery_codes', 'account_tokens')",
    )
    definitions = {r["indexname"]: r["indexdef"] for r in rows}
    assert "(user_id, created_at, credential_id)" in definitions["passkeys_user_id_idx"]
    assert "(user_id, code_hash)" in definitions["recovery_codes_pkey"]
    assert "(user_id, kind)" in definitions["account_tokens_user_id_kind_idx"]
    assert "(exp)" in definitions["account_tokens_exp_idx"]


async def test_a_users_passkeys_and_recovery_codes_go_with_the_user(
    migrated_database_url: str,
) -> None:
    rows = await _fetch(
        migrated_database_url,
        "SELECT kcu.table_name, rc.delete_rule FROM information_schema.referential_constraints rc"
        " JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = rc.constraint_name"
        " WHERE kcu.table_name IN ('passkeys', 'recovery_codes')",
    )
    assert sorted((r["table_name"], r["delete_rule"]) for r in rows) == [
        ("passkeys", "CASCADE"), ("recovery_codes", "CASCADE")]
