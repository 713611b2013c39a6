"""SCIM JSON (RFC 7643) to entities and back.

Reading a body follows RFC 7643 and the habits of real provisioning clients: attribute
names are case-insensitive; read-only attributes (``id``, ``meta``, ``groups``,
``members.display``, ``manager.displayName``) and attributes we do not serve (``roles``,
``entitlements``, ``ims``, unknown extensions) are ignored; the enterprise extension is read
from its URN object (``{"urn:...:enterprise:2.0:User": {...}}``) or from URN-prefixed keys
(``"urn:...:enterprise:2.0:User:department"``), and ``manager`` may be the bare id string
Entra ID sends; booleans may arrive as the strings ``"True"``/``"False"`` (Entra ID).
A value of the wrong type raises ``InvalidValue``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from domain.entities import (
    Address,
    Email,
    EnterpriseUser,
    Group,
    Manager,
    Member,
    MultiValue,
    Name,
    User,
)
from domain.errors import InvalidValue
from domain.scim.schema import (
    ENTERPRISE_USER,
    ENTERPRISE_USER_SCHEMA,
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
#: The most values of any other multi-valued attribute (phoneNumbers, addresses, ...).
MAX_VALUES = 50
#: Certificates are base64 DER: a few kilobytes each.
MAX_CERTIFICATE_LENGTH = 16384
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
        name = _present({
            "formatted": user.name.formatted,
            "familyName": user.name.family_name,
            "givenName": user.name.given_name,
            "middleName": user.name.middle_name,
            "honorificPrefix": user.name.honorific_prefix,
            "honorificSuffix": user.name.honorific_suffix,
        })
        if name:
            out["name"] = name
    if user.display_name is not None:
        out["displayName"] = user.display_name
    out.update(_present({
        "nickName": user.nick_name,
        "profileUrl": user.profile_url,
        "title": user.title,
        "userType": user.user_type,
        "preferredLanguage": user.preferred_language,
        "locale": user.locale,
        "timezone": user.timezone,
    }))
    if user.emails:
        out["emails"] = [_email_json(email) for email in user.emails]
    for key, values in (("phoneNumbers", user.phone_numbers), ("photos", user.photos),
                        ("x509Certificates", user.x509_certificates)):
        if values:
            out[key] = [_multi_value_json(value) for value in values]
    if user.addresses:
        out["addresses"] = [_address_json(address) for address in user.addresses]
    if user.active is not None:
        out["active"] = user.active
    if user.groups:
        out["groups"] = [
            {"value": ref.value, "$ref": f"{base_url}/Groups/{ref.value}", "display": ref.display}
            for ref in user.groups
        ]
    if user.enterprise is not None:
        enterprise = _enterprise_json(user.enterprise, base_url)
        if enterprise:
            out["schemas"] = [USER_SCHEMA, ENTERPRISE_USER_SCHEMA]
            out[ENTERPRISE_USER_SCHEMA] = enterprise
    out["meta"] = _meta("User", f"{base_url}/Users/{user.id}", user.created,
                        user.last_modified, user.version)
    return out


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _multi_value_json(value: MultiValue) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value.value}
    out.update(_present({"display": value.display, "type": value.type}))
    # Always said, as for emails: a client that sent "primary": false reads back what it sent.
    out["primary"] = value.primary
    return out


def _address_json(address: Address) -> dict[str, Any]:
    out = _present({
        "formatted": address.formatted,
        "streetAddress": address.street_address,
        "locality": address.locality,
        "region": address.region,
        "postalCode": address.postal_code,
        "country": address.country,
        "type": address.type,
    })
    out["primary"] = address.primary
    return out


def _enterprise_json(enterprise: EnterpriseUser, base_url: str) -> dict[str, Any]:
    out = _present({
        "employeeNumber": enterprise.employee_number,
        "costCenter": enterprise.cost_center,
        "organization": enterprise.organization,
        "division": enterprise.division,
        "department": enterprise.department,
    })
    manager = enterprise.manager
    if manager is not None:
        out["manager"] = {"value": manager.value, "$ref": f"{base_url}/Users/{manager.value}"}
        if manager.display_name is not None:
            out["manager"]["displayName"] = manager.display_name
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
_PHONE_DEF = _definition(USER, "phoneNumbers")
_ADDRESS_DEF = _definition(USER, "addresses")
_PHOTO_DEF = _definition(USER, "photos")
_CERTIFICATE_DEF = _definition(USER, "x509Certificates")
_MANAGER_DEF = next(a for a in ENTERPRISE_USER.attributes if a.name == "manager")
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
        middle_name=read_string(parts.get("middleName"), "name.middleName"),
        honorific_prefix=read_string(parts.get("honorificPrefix"), "name.honorificPrefix"),
        honorific_suffix=read_string(parts.get("honorificSuffix"), "name.honorificSuffix"),
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


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    """The objects of a multi-valued attribute (a single object counts as a list of one)."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise InvalidValue(f"{what} must be an array")
    if len(value) > MAX_VALUES:
        raise InvalidValue(f"at most {MAX_VALUES} {what}")
    if not all(isinstance(item, dict) for item in value):
        raise InvalidValue(f"each of {what} must be an object")
    return value


def _one_primary(values: tuple[Any, ...], what: str) -> None:
    if sum(value.primary for value in values) > 1:
        raise InvalidValue(f"at most one of {what} may be primary")


def _read_primary(value: Any, what: str) -> bool:
    return False if value is None else read_bool(value, what)


def _read_multi_values(value: Any, definition: AttributeDef,
                       limit: int = MAX_TEXT_LENGTH) -> tuple[MultiValue, ...]:
    what = definition.name
    values: list[MultiValue] = []
    for item in _objects(value, what):
        fields = canonical_keys(item, definition.sub_attributes)
        text = read_string(fields.get("value"), f"{what}.value", limit=limit, required=True)
        assert text is not None
        values.append(MultiValue(
            value=text,
            type=read_string(fields.get("type"), f"{what}.type", limit=MAX_NAME_LENGTH),
            primary=_read_primary(fields.get("primary"), f"{what}.primary"),
            display=read_string(fields.get("display"), f"{what}.display",
                                limit=MAX_NAME_LENGTH),
        ))
    result = tuple(values)
    _one_primary(result, what)
    return result


def _read_addresses(value: Any) -> tuple[Address, ...]:
    addresses: list[Address] = []
    for item in _objects(value, "addresses"):
        f = canonical_keys(item, _ADDRESS_DEF.sub_attributes)
        address = Address(
            formatted=read_string(f.get("formatted"), "addresses.formatted"),
            street_address=read_string(f.get("streetAddress"), "addresses.streetAddress"),
            locality=read_string(f.get("locality"), "addresses.locality",
                                 limit=MAX_NAME_LENGTH),
            region=read_string(f.get("region"), "addresses.region", limit=MAX_NAME_LENGTH),
            postal_code=read_string(f.get("postalCode"), "addresses.postalCode",
                                    limit=MAX_NAME_LENGTH),
            country=read_string(f.get("country"), "addresses.country", limit=MAX_NAME_LENGTH),
            type=read_string(f.get("type"), "addresses.type", limit=MAX_NAME_LENGTH),
            primary=_read_primary(f.get("primary"), "addresses.primary"),
        )
        # An address of nothing but a type (a PATCH that cleared its last part) is no address.
        if msgspec.structs.replace(address, type=None, primary=False) != Address():
            addresses.append(address)
    result = tuple(addresses)
    _one_primary(result, "addresses")
    return result


def _read_manager(value: Any) -> Manager | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"value": value}  # Entra ID sends the manager's id as a bare string
    if not isinstance(value, dict):
        raise InvalidValue("manager must be an object or the manager's id")
    fields = canonical_keys(value, _MANAGER_DEF.sub_attributes)
    manager_id = read_string(fields.get("value"), "manager.value", limit=MAX_NAME_LENGTH)
    # An empty value is how Entra ID clears a manager: no manager.
    return Manager(value=manager_id) if manager_id else None


def _extension_fields(document: dict[str, Any]) -> dict[str, Any]:
    """The enterprise attributes of a body: its URN object, and URN-prefixed keys."""
    urn = ENTERPRISE_USER_SCHEMA.lower()
    fields: dict[str, Any] = {}
    for key, value in document.items():
        if not isinstance(key, str) or not key.lower().startswith(urn):
            continue
        if key.lower() == urn:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InvalidValue(f"{ENTERPRISE_USER_SCHEMA} must be an object")
            fields.update(canonical_keys(value, ENTERPRISE_USER.attributes))
        elif key[len(urn)] == ":":
            fields.update(canonical_keys({key[len(urn) + 1:]: value},
                                         ENTERPRISE_USER.attributes))
    return fields


def _read_enterprise(document: dict[str, Any]) -> EnterpriseUser | None:
    fields = _extension_fields(document)
    if not fields:
        return None
    enterprise = EnterpriseUser(
        employee_number=read_string(fields.get("employeeNumber"), "employeeNumber",
                                    limit=MAX_NAME_LENGTH),
        cost_center=read_string(fields.get("costCenter"), "costCenter", limit=MAX_NAME_LENGTH),
        organization=read_string(fields.get("organization"), "organization",
                                 limit=MAX_NAME_LENGTH),
        division=read_string(fields.get("division"), "division", limit=MAX_NAME_LENGTH),
        department=read_string(fields.get("department"), "department", limit=MAX_NAME_LENGTH),
        manager=_read_manager(fields.get("manager")),
    )
    return None if enterprise == EnterpriseUser() else enterprise


def _short(fields: dict[str, Any], key: str, limit: int = MAX_NAME_LENGTH) -> str | None:
    return read_string(fields.get(key), key, limit=limit)


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
        nick_name=_short(fields, "nickName"),
        profile_url=_short(fields, "profileUrl", MAX_TEXT_LENGTH),
        title=_short(fields, "title"),
        user_type=_short(fields, "userType"),
        preferred_language=_short(fields, "preferredLanguage"),
        locale=_short(fields, "locale"),
        timezone=_short(fields, "timezone"),
        phone_numbers=_read_multi_values(fields.get("phoneNumbers"), _PHONE_DEF,
                                         MAX_NAME_LENGTH),
        addresses=_read_addresses(fields.get("addresses")),
        photos=_read_multi_values(fields.get("photos"), _PHOTO_DEF),
        x509_certificates=_read_multi_values(fields.get("x509Certificates"), _CERTIFICATE_DEF,
                                             MAX_CERTIFICATE_LENGTH),
        enterprise=_read_enterprise(document),
    )
    return user, password


def read_members(value: Any) -> tuple[Member, ...]:
    """The members of a ``members`` value (ids only); ``InvalidValue`` when malformed."""
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
        members=read_members(fields.get("members")),
    )
