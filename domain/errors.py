"""Domain errors.

Adapters translate every driver exception into one of these (``raise StoreUnavailable(...)
from exc``); use cases raise them too; the HTTP layer maps each to one status. No adapter
exception ever crosses the port.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain and the ports raise."""


class NotFound(DomainError):
    """The addressed entity does not exist."""


class Conflict(DomainError):
    """A uniqueness rule would be broken (``userName`` or ``displayName``, case-insensitively).

    ``attribute`` names the SCIM attribute that clashed.
    """

    def __init__(self, message: str, attribute: str = "") -> None:
        super().__init__(message)
        self.attribute = attribute


class PreconditionFailed(DomainError):
    """The entity's version is not the one the caller expected (ETag / ``If-Match``)."""


class InvalidReference(DomainError):
    """A value refers to an entity that does not exist (a group member that is no user)."""


class InvalidValue(DomainError):
    """A value is malformed or not allowed (SCIM ``invalidValue``)."""


class StoreUnavailable(DomainError):
    """The store cannot be reached or failed; the request may be retried later (HTTP 503)."""


class StoreMisconfigured(DomainError):
    """The store cannot be opened or migrated as configured: a missing or malformed
    connection URL, a migration changed since it was applied. Retrying will not help; the
    operator must fix it. ``str()`` is one line, naming no internal component.

    ``variable`` names the environment variable to fix, when the store knows it better than
    its caller (which otherwise names the variable the store's URL came from).
    """

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable
