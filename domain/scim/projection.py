"""``attributes`` and ``excludedAttributes`` (RFC 7644 sections 3.4.2.5 and 3.9) over a
resource's SCIM JSON, honouring each attribute's ``returned`` characteristic (RFC 7643 7):

- ``always`` (``id``, and ``schemas``) is returned whatever the parameters say;
- ``never`` (``password``) is never returned, even when asked for;
- ``request`` (``members.display``) only when ``attributes`` names it, itself;
- ``default`` unless ``excludedAttributes`` names it or ``attributes`` names something else.

Names are case-insensitive and may carry a schema URN: ``urn:...:core:2.0:User:userName``
is ``userName``; an extension's attributes live under the extension's URN as a key of the
resource (RFC 7643 3.3), so ``urn:...:enterprise:2.0:User:department`` names
``department`` inside that key, and the bare URN names the whole extension. A name the
resource does not have selects nothing, which is not an error. ``attributes`` wins when a
request gives both (RFC 7644 3.4.2.5 says they are alternatives).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from domain.scim.schema import AttributeDef, ResourceSchema

#: Returned whatever is asked (``schemas`` is no attribute but every body needs it).
_ALWAYS_KEYS = frozenset({"schemas"})


def split_names(value: str | Iterable[str] | None) -> list[str]:
    """The names of a comma-separated query parameter (or a search body's list), stripped."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [part.strip() for part in parts if part.strip()]


def _path(name: str, resource: ResourceSchema, extensions: Iterable[str]) -> tuple[str, ...]:
    """``name`` as lower-cased keys from the top of the resource: (top[, sub])."""
    lowered = name.lower()
    core = resource.schema.lower()
    if lowered == core:
        return ()
    if lowered.startswith(core + ":"):
        lowered = lowered[len(core) + 1 :]
    else:
        for urn in extensions:
            if lowered == urn:
                return (urn,)
            if lowered.startswith(urn + ":"):
                # The extension's attribute; its sub-attributes select the whole of it.
                return (urn, lowered[len(urn) + 1 :].split(".", 1)[0])
    return tuple(lowered.split(".", 1))


def _definition(resource: ResourceSchema, key: str) -> AttributeDef | None:
    return resource.attribute(key)


def _returned(definition: AttributeDef | None) -> str:
    return definition.returned if definition is not None else "default"


def _keep_sub(value: Any, parent: AttributeDef | None, *, only: set[str] | None = None,
              drop: frozenset[str] | set[str] = frozenset(),
              requested: frozenset[str] | set[str] = frozenset()) -> Any:
    """A complex value (or a list of them) with its sub-attributes selected: ``only`` those
    (when given), else the default ones less ``drop``; ``request`` ones only when in
    ``only`` or ``requested``; ``never`` ones never."""

    def keep(key: str) -> bool:
        lowered = key.lower()
        returned = _returned(parent.sub(key) if parent is not None else None)
        if returned == "never":
            return False
        if returned == "always":
            return True
        if only is not None:
            return lowered in only
        if returned == "request":
            return lowered in requested
        return lowered not in drop

    def one(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        return {key: sub_value for key, sub_value in item.items() if keep(key)}

    if isinstance(value, list):
        return [one(item) for item in value]
    return one(value)


def project(document: dict[str, Any], resource: ResourceSchema,
            attributes: Iterable[str] = (), excluded: Iterable[str] = ()) -> dict[str, Any]:
    """``document`` (a resource as :mod:`domain.scim.resources` renders it, every attribute
    it has) reduced to what the client asked for and may see; see the module docstring."""
    extensions = [key.lower() for key in document if key.lower().startswith("urn:")]
    wanted = [p for p in (_path(name, resource, extensions) for name in attributes) if p]
    unwanted = [] if wanted else [
        p for p in (_path(name, resource, extensions) for name in excluded) if p]
    out: dict[str, Any] = {}
    for key, value in document.items():
        lowered = key.lower()
        if lowered in _ALWAYS_KEYS:
            out[key] = value
            continue
        definition = _definition(resource, key)
        returned = _returned(definition)
        if returned == "never":
            continue
        if returned == "always":
            out[key] = value
            continue
        if wanted:
            subs = {p[1] for p in wanted if len(p) == 2 and p[0] == lowered}
            if (lowered,) in wanted:
                # A parent named in ``attributes`` brings its default sub-attributes; a
                # ``request`` one (members.display) still has to be named itself.
                out[key] = _keep_sub(value, definition, requested=subs)
            elif subs:
                selected = _keep_sub(value, definition, only=subs)
                if selected not in ({}, []):
                    out[key] = selected
            continue
        if returned == "request" or (lowered,) in unwanted:
            continue
        drop = {p[1] for p in unwanted if len(p) == 2 and p[0] == lowered}
        out[key] = _keep_sub(value, definition, drop=drop)
    return out
