"""SCIM JSON (RFC 7643) to entities and back.

Reading a body follows RFC 7643 and the habits of real provisioning clients: attribute
names are case-insensitive; read-only attributes (``id``, ``meta``, ``groups``,
``members.display``) and attributes we do not serve (``title``, the enterprise extension,
...) are ignored; booleans may arrive as the strings ``"True"``/``"False"`` (Entra ID).
A value of the wrong type raises ``InvalidValue``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.entities import Email, Group, Member, Name, User
from domain.errors import InvalidValue
from domain.scim.schema import (
    GROUP,
    GROUP_SCHEMA,
    USER,
    USER_SCHEMA,
    AttributeDef,
    ResourceSchema,
)
from domain.text import require_storable

MAX_NAME_LENGTH = 256
MAX_TEXT_LENGTH = 2048
MAX_EMAILS = 50
MAX_PASSWORD_LENGTH = 1024


def iso_time(seconds: int) -> str:
    """RFC 3339 UTC form of Unix seconds (``2024-01-02T03:04:05Z``)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def etag(version: int) -> str:
    """The weak entity tag of a version, as sent in ``ETag`` and ``meta.version``."""
    return f'W/"{version}"'


def versions_of(header: str | None) -> set[int] | None:
    """The versions an ``If-Match``/``If-None-Match`` header (or a Bulk operation's
    ``version``) names; None for ``*`` or none.

    A tag that is not one of ours (``W/"<n>"`` or ``"<n>"``) becomes -1, which matches nothing.
    """
    if header is None or not header.strip() or header.strip() == "*":
        return None
    versions: set[int] = set()
    for raw in header.split(","):
        tag = raw.strip().removeprefix("W/").strip()
        inner = tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else ""
        versions.add(int(inner) if inner.isdigit() and len(inner) < 19 else -1)
    return versions


def _meta(kind: str, location: str, created: int, modified: int, version: int) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": iso_time(created),
        "lastModified": iso_time(modified),
        "location": location,
        "version": etag(version),
    }


def user_to_json(user: User, base_url: str) -> dict[str, Any]:
    """The SCIM representation of ``user``; ``base_url`` ends in ``/scim/v2``. No password."""
    out: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": user.id}
    if user.external_id is not None:
        out["externalId"] = user.external_id
    out["userName"] = user.user_name
    if user.name is not None:
        name = {
            key: value
            for key, value in (
                ("formatted", user.name.formatted),
                ("familyName", user.name.family_name),
                ("givenName", user.name.given_name),
            )
            if value is not None
        }
        if name:
            out["name"] = name
    if user.display_name is not None:
        out["displayName"] = user.display_name
    if user.emails:
        out["emails"] = [_email_json(email) for email in user.emails]
    if user.active is not None:
        out["active"] = user.active
    if user.groups:
        out["groups"] = [
            {"value": ref.value, "$ref": f"{base_url}/Groups/{ref.value}", "display": ref.display}
            for ref in user.groups
        ]
    out["meta"] = _meta("User", f"{base_url}/Users/{user.id}", user.created,
                        user.last_modified, user.version)
    return out


def _email_json(email: Email) -> dict[str, Any]:
    out: dict[str, Any] = {"value": email.value}
    if email.type is not None:
        out["type"] = email.type
    # Always said, true or false: a client that sent "primary": false reads back what it sent.
    out["primary"] = email.primary
    return out


def group_to_json(group: Group, base_url: str) -> dict[str, Any]:
    """The SCIM representation of ``group``; ``base_url`` ends in ``/scim/v2``."""
    out: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": group.id}
    if group.external_id is not None:
        out["externalId"] = group.external_id
    out["displayName"] = group.display_name
    out["members"] = [
        {
            "value": member.value,
            "$ref": f"{base_url}/Users/{member.value}",
            "display": member.display,
            "type": member.type,
        }
        if member.display is not None
        else {"value": member.value, "$ref": f"{base_url}/Users/{member.value}",
              "type": member.type}
        for member in group.members
    ]
    out["meta"] = _meta("Group", f"{base_url}/Groups/{group.id}", group.created,
                        group.last_modified, group.version)
    return out


# Reading


_NAMES_BY_LOWER: dict[int, tuple[tuple[AttributeDef, ...], dict[str, str]]] = {}


def _names_by_lower(attributes: tuple[AttributeDef, ...]) -> dict[str, str]:
    """Lower-cased name to canonical name, cached: it is asked once per member of a group.

    Callers pass the schema's own tuples, which live as long as the process; an entry holds
    its tuple, so its ``id`` cannot be reused while the entry exists.
    """
    cached = _NAMES_BY_LOWER.get(id(attributes))
    if cached is not None and cached[0] is attributes:
        return cached[1]
    names = {attribute.name.lower(): attribute.name for attribute in attributes}
    if len(_NAMES_BY_LOWER) < 64:
        _NAMES_BY_LOWER[id(attributes)] = (attributes, names)
    return names


def canonical_keys(document: dict[str, Any], attributes: tuple[AttributeDef, ...],
                   schema: str | None = None) -> dict[str, Any]:
    """``document`` with each known attribute under its canonical name; others dropped.

    Keys may carry the schema URN (``urn:...:User:userName``), and the core schema may
    wrap attributes (``{"urn:...:User": {...}}``), as RFC 7644 section 3.10 allows.
    """
    by_lower = _names_by_lower(attributes)
    out: dict[str, Any] = {}
    for key, value in document.items():
        if not isinstance(key, str):
            continue
        lowered = key.lower()
        if schema is not None and lowered.startswith("urn:"):
            prefix = schema.lower()
            if lowered == prefix and isinstance(value, dict):
                out.update(canonical_keys(value, attributes))
                continue
            if lowered.startswith(prefix + ":"):
                lowered = lowered[len(prefix) + 1 :]
        name = by_lower.get(lowered)
        if name is not None:
            out[name] = value
    return out


def read_string(value: Any, what: str, *, limit: int = MAX_TEXT_LENGTH,
                required: bool = False) -> str | None:
    """A string attribute's value (None when absent or null); ``InvalidValue`` otherwise."""
    if value is None:
        if required:
            raise InvalidValue(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be a string")
    if len(value) > limit:
        raise InvalidValue(f"{what} is longer than {limit} characters")
    require_storable(value, what)
    if required and not value.strip():
        raise InvalidValue(f"{what} must not be empty")
    return value


def read_bool(value: Any, what: str) -> bool:
    """A boolean, also from the strings ``"true"``/``"false"`` in any case (Entra ID sends them)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidValue(f"{what} must be true or false")


def _definition(resource: ResourceSchema, name: str) -> AttributeDef:
    found = resource.attribute(name)
    assert found is not None, name
    return found


_EMAIL_DEF = _definition(USER, "emails")
_MEMBER_DEF = _definition(GROUP, "members")
_NAME_DEF = _definition(USER, "name")
_USER_ATTRIBUTES = USER.attributes + USER.common
_GROUP_ATTRIBUTES = GROUP.attributes + GROUP.common


def _read_name(value: Any) -> Name | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidValue("name must be an object")
    parts = canonical_keys(value, _NAME_DEF.sub_attributes)
    name = Name(
        formatted=read_string(parts.get("formatted"), "name.formatted"),
        given_name=read_string(parts.get("givenName"), "name.givenName"),
        family_name=read_string(parts.get("familyName"), "name.familyName"),
    )
    return None if name == Name() else name


def _read_emails(value: Any) -> tuple[Email, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidValue("emails must be an array")
    if len(value) > MAX_EMAILS:
        raise InvalidValue(f"at most {MAX_EMAILS} emails")
    emails: list[Email] = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidValue("each of emails must be an object")
        fields = canonical_keys(item, _EMAIL_DEF.sub_attributes)
        address = read_string(fields.get("value"), "emails.value", required=True)
        assert address is not None
        primary = fields.get("primary")
        emails.append(Email(
            value=address,
            type=read_string(fields.get("type"), "emails.type", limit=MAX_NAME_LENGTH),
            primary=False if primary is None else read_bool(primary, "emails.primary"),
        ))
    if sum(email.primary for email in emails) > 1:
        raise InvalidValue("at most one of emails may be primary")
    return tuple(emails)


def user_from_json(document: Any, absent_active: bool | None = True
                   ) -> tuple[User, str | None]:
    """A user (without id, times or version) and the password, from a SCIM body.

    A body without ``active`` gives ``absent_active``: the default (true) for a create or a
    PUT, None (unassigned) for the result of a PATCH, where it was removed or already unset.
    Raises ``InvalidValue`` for a body that is not an object, a missing ``userName``, or a
    value of the wrong type. The password is returned apart: it is never part of ``User``.
    """
    if not isinstance(document, dict):
        raise InvalidValue("the body must be a JSON object")
    fields = canonical_keys(document, _USER_ATTRIBUTES, USER_SCHEMA)
    user_name = read_string(fields.get("userName"), "userName", limit=MAX_NAME_LENGTH,
                            required=True)
    assert user_name is not None
    active = fields.get("active")
    password = read_string(fields.get("password"), "password", limit=MAX_PASSWORD_LENGTH)
    if password is not None and not password:
        raise InvalidValue("password must not be empty")
    user = User(
        user_name=user_name,
        external_id=read_string(fields.get("externalId"), "externalId", limit=MAX_NAME_LENGTH),
        display_name=read_string(fields.get("displayName"), "displayName",
                                 limit=MAX_NAME_LENGTH),
        name=_read_name(fields.get("name")),
        emails=_read_emails(fields.get("emails")),
        active=absent_active if active is None else read_bool(active, "active"),
    )
    return user, password


def _read_members(value: Any) -> tuple[Member, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidValue("members must be an array")
    members: list[Member] = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidValue("each of members must be an object")
        fields = canonical_keys(item, _MEMBER_DEF.sub_attributes)
        member_id = read_string(fields.get("value"), "members.value", limit=MAX_NAME_LENGTH,
                                required=True)
        assert member_id is not None
        kind = read_string(fields.get("type"), "members.type", limit=MAX_NAME_LENGTH)
        if kind is not None and kind.lower() != "user":
            raise InvalidValue("only users can be members of a group")
        members.append(Member(value=member_id))
    return tuple(members)


def group_from_json(document: Any) -> Group:
    """A group (without id, times or version) from a SCIM body; ``InvalidValue`` when malformed."""
    if not isinstance(document, dict):
        raise InvalidValue("the body must be a JSON object")
    fields = canonical_keys(document, _GROUP_ATTRIBUTES, GROUP_SCHEMA)
    display_name = read_string(fields.get("displayName"), "displayName",
                               limit=MAX_NAME_LENGTH, required=True)
    assert display_name is not None
    return Group(
        display_name=display_name,
        external_id=read_string(fields.get("externalId"), "externalId", limit=MAX_NAME_LENGTH),
        members=_read_members(fields.get("members")),
    )
