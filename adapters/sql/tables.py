"""SQLAlchemy Core descriptions of the tables the migrations create (at head).

These are used only to build statements; the schema itself is owned by ``migrations/``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_name", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("external_id", sa.Text),
    sa.Column("display_name", sa.Text),
    sa.Column("given_name", sa.Text),
    sa.Column("family_name", sa.Text),
    sa.Column("formatted_name", sa.Text),
    sa.Column("emails", JSONB, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("last_modified", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("active_assigned", sa.Boolean, nullable=False),
    sa.Column("middle_name", sa.Text),
    sa.Column("honorific_prefix", sa.Text),
    sa.Column("honorific_suffix", sa.Text),
    sa.Column("nick_name", sa.Text),
    sa.Column("profile_url", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("user_type", sa.Text),
    sa.Column("preferred_language", sa.Text),
    sa.Column("locale", sa.Text),
    sa.Column("timezone", sa.Text),
    sa.Column("phone_numbers", JSONB, nullable=False),
    sa.Column("addresses", JSONB, nullable=False),
    sa.Column("photos", JSONB, nullable=False),
    sa.Column("x509_certificates", JSONB, nullable=False),
    sa.Column("employee_number", sa.Text),
    sa.Column("cost_center", sa.Text),
    sa.Column("organization", sa.Text),
    sa.Column("division", sa.Text),
    sa.Column("department", sa.Text),
    sa.Column("manager_id", sa.Text),
)

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("external_id", sa.Text),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("last_modified", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column("group_id", sa.Text, sa.ForeignKey("groups.id"), primary_key=True),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("member_type", sa.Text, nullable=False),
)

user_credentials = sa.Table(
    "user_credentials",
    metadata,
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("password_hash", sa.Text),
    sa.Column("totp_secret", sa.Text),
    sa.Column("totp_confirmed", sa.Boolean, nullable=False),
    #: The address the user proved by a verification link (migration 0020).
    sa.Column("verified_email", sa.Text),
)

auth_codes = sa.Table(
    "auth_codes",
    metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("nonce", sa.Text),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("pkce_challenge", sa.Text),
    sa.Column("pkce_method", sa.Text),
    sa.Column("user_id", sa.Text),
    sa.Column("exp", sa.BigInteger, nullable=False),
    sa.Column("grant_id", sa.Text),
    sa.Column("auth_time", sa.BigInteger),
    sa.Column("mfa_verified", sa.Boolean, nullable=False),
    sa.Column("sid", sa.Text),
    sa.Column("acr", sa.Text),
    #: Space-separated RFC 8176 values, in order ('' for a code from before sessions).
    sa.Column("amr", sa.Text, nullable=False, server_default=""),
    #: Space-separated RFC 8707 resource URIs (migration 0014; URIs hold no space).
    sa.Column("resources", sa.Text, nullable=False, server_default=""),
)

consumed_codes = sa.Table(
    "consumed_codes",
    metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("grant_id", sa.Text, nullable=False),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("exp", sa.BigInteger, nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_hash", sa.Text, primary_key=True),
    sa.Column("token_display", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("scope", sa.Text),
    sa.Column("client_id", sa.Text),
    sa.Column("exp", sa.BigInteger),
    sa.Column("iat", sa.BigInteger),
    sa.Column("sub", sa.Text),
    sa.Column("token_binding", sa.Text),
    sa.Column("mfa_verified", sa.Boolean, nullable=False),
    sa.Column("grant_id", sa.Text),
    sa.Column("auth_time", sa.BigInteger),
    #: The token's ``aud``, space-separated resource URIs ('' for none).
    sa.Column("audience", sa.Text, nullable=False, server_default=""),
    #: The actors of an exchanged token (RFC 8693 ``act``), space-separated client ids.
    sa.Column("act", sa.Text, nullable=False, server_default=""),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("refresh_token_hash", sa.Text, primary_key=True),
    sa.Column("access_token_hash", sa.Text, nullable=False),
    sa.Column("exp", sa.BigInteger, nullable=False),
    sa.Column("grant_id", sa.Text),
    sa.Column("client_id", sa.Text),
    sa.Column("scope", sa.Text),
    sa.Column("sub", sa.Text),
    sa.Column("mfa_verified", sa.Boolean, nullable=False),
    sa.Column("iat", sa.BigInteger),
    sa.Column("auth_time", sa.BigInteger),
    sa.Column("token_binding", sa.Text),
    #: The resource servers the grant is bound to, space-separated ('' for none).
    sa.Column("resources", sa.Text, nullable=False, server_default=""),
)

refresh_token_reuse = sa.Table(
    "refresh_token_reuse",
    metadata,
    sa.Column("refresh_token_hash", sa.Text, primary_key=True),
    sa.Column("exp", sa.BigInteger, nullable=False),
    sa.Column("grant_id", sa.Text),
)

ephemeral_claims = sa.Table(
    "ephemeral_claims",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("exp", sa.BigInteger, nullable=False),
)

ephemeral_counters = sa.Table(
    "ephemeral_counters",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("window_start", sa.BigInteger, nullable=False),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("exp", sa.BigInteger, nullable=False),
)

oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("client_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("document", JSONB, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

client_initial_access_tokens = sa.Table(
    "client_initial_access_tokens",
    metadata,
    sa.Column("digest", sa.Text, primary_key=True),
    sa.Column("uses_left", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger),
)

# Sessions and consents (migration 0013). Keys use the "C" collation, so that they sort as
# the other backends sort them (code-point order).
_KEY = sa.Text(collation="C")

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id_hash", _KEY, primary_key=True),
    sa.Column("sid", _KEY, nullable=False, unique=True),
    sa.Column("user_id", _KEY, nullable=False),
    sa.Column("auth_time", sa.BigInteger, nullable=False),
    sa.Column("amr", ARRAY(sa.Text), nullable=False),
    sa.Column("acr", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("idle_exp", sa.BigInteger, nullable=False),
    sa.Column("exp", sa.BigInteger, nullable=False),
    sa.Column("clients", ARRAY(sa.Text), nullable=False, server_default="{}"),
    #: LEAST(idle_exp, exp), kept by PostgreSQL: live while it is after now.
    sa.Column("live_until", sa.BigInteger, sa.Computed("LEAST(idle_exp, exp)", persisted=True)),
)

session_grants = sa.Table(
    "session_grants",
    metadata,
    # ON UPDATE CASCADE since migration 0019: a re-keyed session takes its grants along.
    sa.Column("id_hash", _KEY, sa.ForeignKey("sessions.id_hash", ondelete="CASCADE",
                                             onupdate="CASCADE"),
              primary_key=True),
    sa.Column("client_id", _KEY, primary_key=True),
    sa.Column("grant_id", _KEY, primary_key=True),
    sa.Column("position", sa.BigInteger, sa.Identity(always=True), nullable=False),
)

consents = sa.Table(
    "consents",
    metadata,
    sa.Column("user_id", _KEY, primary_key=True),
    sa.Column("client_id", _KEY, primary_key=True),
    sa.Column("scopes", ARRAY(_KEY), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

consent_grants = sa.Table(
    "consent_grants",
    metadata,
    sa.Column("user_id", _KEY, primary_key=True),
    sa.Column("client_id", _KEY, primary_key=True),
    sa.Column("grant_id", _KEY, primary_key=True),
    sa.Column("exp", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(["user_id", "client_id"], ["consents.user_id", "consents.client_id"],
                            name="consent_grants_consent_fkey", ondelete="CASCADE"),
)

device_authorizations = sa.Table(
    "device_authorizations",
    metadata,
    sa.Column("device_code_hash", sa.Text, primary_key=True),
    sa.Column("user_code_hash", sa.Text, nullable=False, unique=True),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("resources", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("exp", sa.BigInteger, nullable=False),
    #: ``DeviceAuthorization.interval`` (``interval`` is an SQL keyword).
    sa.Column("poll_interval", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("last_poll", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("user_id", sa.Text),
    sa.Column("auth_time", sa.BigInteger),
    sa.Column("amr", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("acr", sa.Text),
    sa.Column("sid", sa.Text),
)

# Issue 17 (migration 0020): passkeys, recovery codes, mailed single-use links.

passkeys = sa.Table(
    "passkeys",
    metadata,
    sa.Column("credential_id", _KEY, primary_key=True),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("sign_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("transports", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("synced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_used_at", sa.BigInteger),
)

recovery_codes = sa.Table(
    "recovery_codes",
    metadata,
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("code_hash", _KEY, primary_key=True),
)

account_tokens = sa.Table(
    "account_tokens",
    metadata,
    sa.Column("token_hash", _KEY, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("exp", sa.BigInteger, nullable=False),
)
