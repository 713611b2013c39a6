"""Attribute definitions of the SCIM resources we serve (RFC 7643 sections 4 and 7).

One set of definitions drives three things, so they cannot drift apart: the ``/Schemas``
and ``/ResourceTypes`` discovery documents, the validation of filters
(:func:`validate_filter`) and the validation of PATCH paths (:func:`resolve_patch_target`).

Common attributes (``id``, ``externalId``, ``meta``) are defined separately: RFC 7643
section 3.1 keeps them out of the resource schemas, so discovery omits them, but filters
and PATCH paths may name them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from domain.errors import InvalidValue
from domain.filter_parser import InvalidFilter, InvalidPath
from domain.filters import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath

AttrType = Literal["string", "boolean", "complex", "dateTime", "reference", "binary"]
Mutability = Literal["readOnly", "readWrite", "immutable", "writeOnly"]
Returned = Literal["always", "never", "default", "request"]
Uniqueness = Literal["none", "server", "global"]
Kind = Literal["ci", "exact", "bool", "time"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SERVICE_PROVIDER_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


class AttributeDef(msgspec.Struct, frozen=True, kw_only=True):
    """One attribute (or sub-attribute) as RFC 7643 section 7 describes it.

    ``filterable`` is ours, not the RFC's: attributes a filter may name (write-only ones
    and references may not).
    """

    name: str
    type: AttrType = "string"
    multi_valued: bool = False
    description: str = ""
    required: bool = False
    case_exact: bool = False
    mutability: Mutability = "readWrite"
    returned: Returned = "default"
    uniqueness: Uniqueness = "none"
    sub_attributes: tuple[AttributeDef, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    filterable: bool = True

    @property
    def kind(self) -> Kind | None:
        """How filters compare this attribute, or None when they cannot."""
        if not self.filterable:
            return None
        if self.type == "boolean":
            return "bool"
        if self.type == "dateTime":
            return "time"
        if self.type == "string":
            return "exact" if self.case_exact else "ci"
        return None

    def sub(self, name: str) -> AttributeDef | None:
        """The sub-attribute called ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        for attribute in self.sub_attributes:
            if attribute.name.lower() == lowered:
                return attribute
        return None

    @property
    def default_sub(self) -> str | None:
        """The sub-attribute a filter means when it names only this complex attribute."""
        if self.multi_valued and self.sub("value") is not None:
            return "value"
        if self.sub("formatted") is not None:
            return "formatted"
        return None

    def to_json(self) -> dict[str, Any]:
        """The RFC 7643 section 7 representation."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
        }
        if self.type in ("string", "reference", "binary"):
            out["caseExact"] = self.case_exact
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        out["mutability"] = self.mutability
        out["returned"] = self.returned
        if self.type != "complex":
            out["uniqueness"] = self.uniqueness
        if self.sub_attributes:
            out["subAttributes"] = [a.to_json() for a in self.sub_attributes]
        return out


class SchemaExtension(msgspec.Struct, frozen=True, kw_only=True):
    """A schema extension (RFC 7643 section 3.3): its URN, name and attributes. In a
    resource, its attributes sit in an object under the URN."""

    schema: str
    name: str
    description: str
    attributes: tuple[AttributeDef, ...]
    required: bool = False

    def attribute(self, name: str) -> AttributeDef | None:
        """The attribute called ``name``, case-insensitively, or None."""
        lowered = name.lower()
        return next((a for a in self.attributes if a.name.lower() == lowered), None)

    @property
    def as_attribute(self) -> AttributeDef:
        """The whole extension as one complex attribute (a PATCH path may name it)."""
        return AttributeDef(name=self.schema, type="complex", description=self.description,
                            sub_attributes=self.attributes, filterable=False)

    def schema_json(self, base_url: str) -> dict[str, Any]:
        """The ``/Schemas/{urn}`` resource."""
        return {
            "schemas": [SCHEMA],
            "id": self.schema,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_json() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.schema}"},
        }


class Located(msgspec.Struct, frozen=True):
    """Where an attribute path leads: the definition, and the extension holding it (None for
    the core schema and the common attributes)."""

    attribute: AttributeDef
    extension: SchemaExtension | None = None


class ResourceSchema(msgspec.Struct, frozen=True, kw_only=True):
    """A resource type with its core schema, the attributes it serves and its extensions."""

    name: str
    endpoint: str
    schema: str
    description: str
    attributes: tuple[AttributeDef, ...]
    common: tuple[AttributeDef, ...]
    extensions: tuple[SchemaExtension, ...] = ()

    def attribute(self, name: str) -> AttributeDef | None:
        """The top-level attribute (resource or common) called ``name``, case-insensitively."""
        lowered = name.lower()
        for attribute in (*self.attributes, *self.common):
            if attribute.name.lower() == lowered:
                return attribute
        return None

    def extension(self, urn: str) -> SchemaExtension | None:
        """The extension whose URN is ``urn`` (case-insensitively), or None."""
        lowered = urn.lower()
        return next((e for e in self.extensions if e.schema.lower() == lowered), None)

    def locate(self, path: AttrPath) -> Located | None:
        """The top-level attribute ``path`` names, in the core schema or an extension.

        A path with the core URN (or none) names a core attribute; with an extension's URN,
        that extension's. A bare name the core schema lacks is looked up in the extensions
        (RFC 7644 section 3.10 asks clients to qualify them; being lenient costs nothing,
        since no extension attribute shares a core name). ``urn:...:User`` alone (parsed as
        schema ``urn:...:2.0``, attribute ``user``) names a whole extension.
        """
        if path.schema is None or path.schema == self.schema.lower():
            found = self.attribute(path.attr)
            if found is not None or path.schema is not None:
                return None if found is None else Located(found)
            for extension in self.extensions:
                inner = extension.attribute(path.attr)
                if inner is not None:
                    return Located(inner, extension)
            return None
        named = self.extension(path.schema)
        if named is not None:
            inner = named.attribute(path.attr)
            return None if inner is None else Located(inner, named)
        whole = self.extension(f"{path.schema}:{path.attr}")
        if whole is not None and path.sub_attr is None:
            return Located(whole.as_attribute)
        return None

    def schema_json(self, base_url: str) -> dict[str, Any]:
        """The ``/Schemas/{urn}`` resource."""
        return {
            "schemas": [SCHEMA],
            "id": self.schema,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_json() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.schema}"},
        }

    def resource_type_json(self, base_url: str) -> dict[str, Any]:
        """The ``/ResourceTypes/{name}`` resource."""
        return {
            "schemas": [RESOURCE_TYPE],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema,
            "schemaExtensions": [
                {"schema": e.schema, "required": e.required} for e in self.extensions
            ],
            "meta": {"resourceType": "ResourceType",
                     "location": f"{base_url}/ResourceTypes/{self.name}"},
        }


def _string(name: str, description: str, **options: Any) -> AttributeDef:
    return AttributeDef(name=name, description=description, **options)


def _multi(name: str, description: str, value: AttributeDef,
           types: tuple[str, ...]) -> AttributeDef:
    """A multi-valued attribute with the usual value, display, type and primary."""
    return AttributeDef(
        name=name,
        type="complex",
        multi_valued=True,
        description=description,
        sub_attributes=(
            value,
            _string("display", "A label for display.", filterable=False),
            _string("type", "A label for the value's function.", canonical_values=types),
            AttributeDef(name="primary", type="boolean",
                         description="Whether this is the primary value (at most one)."),
        ),
    )


_META = AttributeDef(
    name="meta",
    type="complex",
    description="Resource metadata.",
    mutability="readOnly",
    sub_attributes=(
        _string("resourceType", "The resource type.", mutability="readOnly",
                case_exact=True, filterable=False),
        AttributeDef(name="created", type="dateTime", mutability="readOnly",
                     description="When the resource was added."),
        AttributeDef(name="lastModified", type="dateTime", mutability="readOnly",
                     description="When the resource was last updated."),
        AttributeDef(name="location", type="reference", reference_types=("uri",),
                     mutability="readOnly", case_exact=True, filterable=False,
                     description="The URI of the resource."),
        _string("version", "The entity tag (ETag) of the resource.", mutability="readOnly",
                case_exact=True, filterable=False),
    ),
)

_COMMON = (
    _string("id", "Unique identifier assigned by the service provider.", case_exact=True,
            mutability="readOnly", returned="always", uniqueness="server"),
    _string("externalId", "Identifier assigned by the provisioning client.", case_exact=True),
    _META,
)

USER = ResourceSchema(
    name="User",
    endpoint="/Users",
    schema=USER_SCHEMA,
    description="User Account",
    common=_COMMON,
    attributes=(
        _string("userName", "Unique identifier for the user, used to sign in. Unique "
                "case-insensitively.", required=True, uniqueness="server"),
        AttributeDef(
            name="name",
            type="complex",
            description="The components of the user's name.",
            sub_attributes=(
                _string("formatted", "The full name."),
                _string("familyName", "The family name."),
                _string("givenName", "The given name."),
                _string("middleName", "The middle name(s)."),
                _string("honorificPrefix", "The honorific prefix (Ms., Dr.)."),
                _string("honorificSuffix", "The honorific suffix (III, Jr.)."),
            ),
        ),
        _string("displayName", "The name of the user, suitable for display."),
        AttributeDef(
            name="emails",
            type="complex",
            multi_valued=True,
            description="Email addresses of the user.",
            sub_attributes=(
                _string("value", "The email address."),
                _string("type", "A label: work, home or other.",
                        canonical_values=("work", "home", "other")),
                AttributeDef(name="primary", type="boolean",
                             description="Whether this is the primary address (at most one)."),
            ),
        ),
        AttributeDef(name="active", type="boolean",
                     description="Whether the user may sign in. false revokes their tokens."),
        _string("nickName", "The casual way to address the user."),
        AttributeDef(name="profileUrl", type="reference", reference_types=("external",),
                     filterable=False, description="A URI of the user's online profile."),
        _string("title", "The user's title (Vice President)."),
        _string("userType", "The relationship to the organization (Employee, Contractor)."),
        _string("preferredLanguage", "The preferred written or spoken language "
                "(RFC 7231 Accept-Language form, en-US)."),
        _string("locale", "The user's default location, for localizing (en-US)."),
        _string("timezone", "The user's time zone, in IANA form (America/Los_Angeles)."),
        _multi("phoneNumbers", "Phone numbers of the user.", _string("value", "The number."),
               ("work", "home", "mobile", "fax", "pager", "other")),
        AttributeDef(
            name="addresses",
            type="complex",
            multi_valued=True,
            description="Physical mailing addresses of the user.",
            sub_attributes=(
                _string("formatted", "The full address, for display."),
                _string("streetAddress", "The street address (house number, street name)."),
                _string("locality", "The city or locality."),
                _string("region", "The state or region."),
                _string("postalCode", "The zip or postal code."),
                _string("country", "The country (ISO 3166-1 alpha-2, US)."),
                _string("type", "A label: work, home or other.",
                        canonical_values=("work", "home", "other")),
                AttributeDef(name="primary", type="boolean",
                             description="Whether this is the primary address (at most one)."),
            ),
        ),
        _multi("photos", "URIs of photos of the user (never fetched by this service).",
               AttributeDef(name="value", type="reference", reference_types=("external",),
                            filterable=False, description="The URI of the photo."),
               ("photo", "thumbnail")),
        _multi("x509Certificates", "Certificates of the user (stored, never parsed).",
               AttributeDef(name="value", type="binary", filterable=False,
                            description="The DER certificate, base64."),
               ()),
        _string("password", "The user's password; write-only, stored hashed, never returned.",
                mutability="writeOnly", returned="never", filterable=False),
        AttributeDef(
            name="groups",
            type="complex",
            multi_valued=True,
            mutability="readOnly",
            description="Groups the user belongs to, from group memberships (read-only).",
            sub_attributes=(
                _string("value", "The id of the group.", case_exact=True, mutability="readOnly"),
                AttributeDef(name="$ref", type="reference", reference_types=("Group",),
                             mutability="readOnly", case_exact=True, filterable=False,
                             description="The URI of the group."),
                _string("display", "The group's displayName.", mutability="readOnly"),
            ),
        ),
    ),
)

ENTERPRISE_USER = SchemaExtension(
    schema=ENTERPRISE_USER_SCHEMA,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        _string("employeeNumber", "A number or name that identifies the user in the "
                "organization."),
        _string("costCenter", "The cost center."),
        _string("organization", "The organization."),
        _string("division", "The division."),
        _string("department", "The department."),
        AttributeDef(
            name="manager",
            type="complex",
            description="The user's manager, by the id of another user.",
            sub_attributes=(
                _string("value", "The id of the manager's User.", case_exact=True),
                AttributeDef(name="$ref", type="reference", reference_types=("User",),
                             case_exact=True, filterable=False,
                             description="The URI of the manager's User (derived from value)."),
                _string("displayName", "The manager's displayName.", mutability="readOnly",
                        filterable=False),
            ),
        ),
    ),
)

USER = msgspec.structs.replace(USER, extensions=(ENTERPRISE_USER,))

GROUP = ResourceSchema(
    name="Group",
    endpoint="/Groups",
    schema=GROUP_SCHEMA,
    description="Group",
    common=_COMMON,
    attributes=(
        _string("displayName", "The name of the group. Unique case-insensitively.",
                required=True, uniqueness="server"),
        AttributeDef(
            name="members",
            type="complex",
            multi_valued=True,
            description="The users in the group.",
            sub_attributes=(
                _string("value", "The id of the member user.", case_exact=True,
                        mutability="immutable"),
                AttributeDef(name="$ref", type="reference", reference_types=("User",),
                             mutability="immutable", case_exact=True, filterable=False,
                             description="The URI of the member."),
                # returned "request": a member's display is no value the client sent (RFC
                # 7643 8.7.1 has no such sub-attribute), so it is only sent when asked for
                # (attributes=members.display), and a written group reads back as written.
                _string("display", "The member's userName (only with "
                        "attributes=members.display).", mutability="readOnly",
                        returned="request"),
                _string("type", "The kind of member; only User is supported.",
                        canonical_values=("User",), mutability="immutable"),
            ),
        ),
    ),
)

RESOURCES: tuple[ResourceSchema, ...] = (USER, GROUP)
#: Every schema ``/Schemas`` serves, extensions included.
SCHEMAS: tuple[ResourceSchema | SchemaExtension, ...] = (USER, ENTERPRISE_USER, GROUP)


# Filter validation


def parse_instant(value: object) -> int | float:
    """Unix seconds of an ISO 8601 date-time string (naive means UTC). Raises ``InvalidValue``."""
    if not isinstance(value, str):
        raise InvalidValue("a date-time attribute compares only with an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidValue(f"not an ISO 8601 date-time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    return int(seconds) if seconds.is_integer() else seconds


def _resolve_filter_path(
    path: AttrPath, resource: ResourceSchema, parent: AttributeDef | None
) -> AttributeDef:
    """The (scalar or complex) definition a filter path names, or ``InvalidFilter``."""
    if parent is not None:
        found = parent.sub(path.attr)
        if found is None or path.sub_attr is not None or path.schema is not None:
            raise InvalidFilter(f"unknown attribute {parent.name}.{path.dotted()}")
        return found
    if (path.schema is not None and path.schema != resource.schema.lower()
            and resource.extension(path.schema) is None):
        raise InvalidFilter(f"unsupported schema {path.schema!r} in filter")
    located = resource.locate(path)
    if located is None or located.attribute.name.startswith("urn:"):
        raise InvalidFilter(f"unknown attribute {path.dotted()!r} for {resource.name}")
    top = located.attribute
    if path.sub_attr is None:
        return top
    sub = top.sub(path.sub_attr)
    if sub is None:
        raise InvalidFilter(f"unknown attribute {path.dotted()!r} for {resource.name}")
    return sub


def _comparable(definition: AttributeDef, text: str) -> AttributeDef:
    if definition.type == "complex":
        default = definition.default_sub
        sub = definition.sub(default) if default else None
        if sub is None:
            raise InvalidFilter(f"{text!r} is complex: name one of its sub-attributes")
        definition = sub
    if definition.kind is None:
        raise InvalidFilter(f"{text!r} cannot be used in a filter")
    return definition


def _validate(expr: Filter, resource: ResourceSchema, parent: AttributeDef | None) -> None:
    if isinstance(expr, And | Or):
        _validate(expr.left, resource, parent)
        _validate(expr.right, resource, parent)
    elif isinstance(expr, Not):
        _validate(expr.inner, resource, parent)
    elif isinstance(expr, Present):
        _comparable(_resolve_filter_path(expr.path, resource, parent), expr.path.dotted())
    elif isinstance(expr, ValuePath):
        if parent is not None:
            raise InvalidFilter("a value path cannot be nested")
        target = _resolve_filter_path(expr.path, resource, None)
        if target.type != "complex" or expr.path.sub_attr is not None:
            raise InvalidFilter(f"{expr.path.dotted()!r} is not a complex attribute")
        _validate(expr.inner, resource, target)
    elif isinstance(expr, Compare):
        _validate_compare(expr, resource, parent)


def _validate_compare(expr: Compare, resource: ResourceSchema, parent: AttributeDef | None) -> None:
    text = expr.path.dotted()
    definition = _comparable(_resolve_filter_path(expr.path, resource, parent), text)
    kind, op, value = definition.kind, expr.op, expr.value
    if value is None:
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"'{op}' cannot compare with null")
        return
    if kind == "bool":
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"'{op}' does not apply to the boolean {text!r}")
        if not isinstance(value, bool):
            raise InvalidFilter(f"{text!r} is boolean: compare it with true or false")
    elif kind == "time":
        if op in ("co", "sw", "ew"):
            raise InvalidFilter(f"'{op}' does not apply to the date-time {text!r}")
        try:
            parse_instant(value)
        except InvalidValue as exc:
            raise InvalidFilter(f"{text!r}: {exc}") from exc
    elif not isinstance(value, str):
        raise InvalidFilter(f"{text!r} is a string: compare it with a quoted value")


def validate_filter(expr: Filter, resource: ResourceSchema) -> None:
    """Check that ``expr`` makes sense for ``resource``; raises ``InvalidFilter`` if not.

    Unknown attributes, schemas other than the resource's, ordering or substring operators
    on booleans, substring operators on date-times, unparsable date-times and values of the
    wrong JSON type are all rejected here, before any store sees the filter.
    """
    _validate(expr, resource, None)


# PATCH paths


class PatchTarget(msgspec.Struct, frozen=True):
    """A PATCH path checked against a resource: the top attribute and, maybe, a
    sub-attribute; ``extension`` is the URN of the extension object holding the attribute
    (None for the core schema, and for a path naming a whole extension, whose attribute
    is then named by the URN)."""

    attribute: AttributeDef
    sub: AttributeDef | None = None
    extension: str | None = None


def resolve_patch_target(
    path: AttrPath, resource: ResourceSchema, sub_attr: str | None = None
) -> PatchTarget:
    """The attributes a PATCH path names; ``InvalidPath`` when the resource has no such one.

    ``sub_attr`` is the ``.subAttr`` after a value filter (``emails[...].value``).
    """
    located = resource.locate(path)
    if located is None:
        if (path.schema is not None and path.schema != resource.schema.lower()
                and resource.extension(path.schema) is None
                and resource.extension(f"{path.schema}:{path.attr}") is None):
            raise InvalidPath(f"unsupported schema {path.schema!r} in path")
        raise InvalidPath(f"unknown attribute {path.dotted()!r} for {resource.name}")
    top = located.attribute
    extension = located.extension.schema if located.extension is not None else None
    sub_name = path.sub_attr or sub_attr
    if sub_name is None:
        return PatchTarget(top, None, extension)
    if path.sub_attr is not None and sub_attr is not None:
        raise InvalidPath(f"{path.dotted()!r} cannot take a second sub-attribute")
    sub = top.sub(sub_name)
    if sub is None:
        raise InvalidPath(f"unknown attribute {top.name}.{sub_name}")
    return PatchTarget(top, sub, extension)


def validate_value_filter(expr: Filter, parent: AttributeDef, resource: ResourceSchema) -> None:
    """Check a PATCH value filter (``emails[type eq "work"]``); ``InvalidPath`` if it is wrong."""
    if parent.type != "complex" or not parent.multi_valued:
        raise InvalidPath(f"{parent.name!r} is not multi-valued: it takes no value filter")
    try:
        _validate(expr, resource, parent)
    except InvalidFilter as exc:
        raise InvalidPath(str(exc)) from exc


# Sorting


def sort_target(path: AttrPath, resource: ResourceSchema) -> tuple[AttrPath, AttributeDef]:
    """The single value ``sortBy`` names (RFC 7644 3.4.2.3): the path without its schema
    prefix, completed with the default sub-attribute of a complex attribute, and its
    definition. Every attribute a filter may compare can be sorted by; ``InvalidValue``
    (``invalidValue`` on the wire) for any other."""
    text = path.dotted()
    try:
        target = _resolve_filter_path(path, resource, None)
        definition = _comparable(target, text)
    except InvalidFilter as exc:
        raise InvalidValue(f"sortBy: {exc}") from exc
    if target.type == "complex":
        default = target.default_sub
        assert default is not None  # _comparable found one
        return AttrPath(path.attr, default.lower()), definition
    return AttrPath(path.attr, path.sub_attr), definition
