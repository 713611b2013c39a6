"""SCIM Bulk (RFC 7644 section 3.7): many writes in one request, referring to each other.

- A request holds at most :data:`MAX_OPERATIONS` operations (more: ``BulkLimitExceeded``,
  which the HTTP layer answers 413 naming the limit, section 3.7.4). The payload limit,
  :data:`MAX_PAYLOAD_SIZE`, is checked by the HTTP layer before the body is decoded.
- Each operation is one write of :mod:`domain.scim.writes` (the same unit a single
  request runs), so on sql each operation is its own transaction: a crash leaves every
  operation either done or not begun, never half done, and no lock is held for the whole
  bulk. RFC 7644 does not make a bulk atomic, and neither do we.
- ``bulkId:<id>`` as a whole string value anywhere in ``data`` (group ``members``, the
  enterprise ``manager``, a PATCH value) or as the id in ``path`` (``/Users/bulkId:q``) is
  replaced by the id of the resource the operation with that ``bulkId`` created. Operations
  run in request order, except that an operation runs after the ones it refers to (so a
  group may be posted before its members). A reference to no operation is ``invalidValue``
  (400); an operation that refers, directly or not, to itself (a cycle), or to one that
  failed, is not run and fails with 409, as section 3.7.1 allows.
- ``failOnErrors`` n stops the bulk after its n-th failed operation; the response then
  lists the operations run so far. A store outage stops it at once (the next operations
  would fail the same way).
- Every operation is a write: the caller passes whether its token may write, and without
  that each operation fails with 403, as the single request would.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from domain import identities
from domain.entities import Group, User
from domain.errors import DomainError, StoreUnavailable
from domain.scim import writes
from domain.scim.errors import InvalidSyntax
from domain.scim.writes import WritePorts

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
#: ``ServiceProviderConfig.bulk.maxOperations``.
MAX_OPERATIONS = 1000
#: ``ServiceProviderConfig.bulk.maxPayloadSize``, in bytes (1 MiB, the service's body limit).
MAX_PAYLOAD_SIZE = 1024 * 1024
REFERENCE_PREFIX = "bulkId:"
MAX_BULK_ID_LENGTH = 256

Method = Literal["POST", "PUT", "PATCH", "DELETE"]
Resource = Literal["Users", "Groups"]
_METHODS: tuple[Method, ...] = ("POST", "PUT", "PATCH", "DELETE")
_RESOURCES: tuple[Resource, ...] = ("Users", "Groups")


class BulkLimitExceeded(DomainError):
    """The request is over a limit of ``ServiceProviderConfig.bulk`` (``limit`` names it)."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class OperationFailed(DomainError):
    """An operation cannot run as written; ``status`` and ``scim_type`` are what its entry
    in the BulkResponse says (the SCIM status of the equivalent single request)."""

    def __init__(self, status: int, message: str, scim_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.scim_type = scim_type


class Operation(msgspec.Struct, frozen=True):
    """One operation as read from the request; ``problem`` when it cannot run at all."""

    method: str
    path: str
    bulk_id: str | None = None
    version: str | None = None
    data: Any = None
    references: tuple[str, ...] = ()
    problem: DomainError | None = None


class BulkRequest(msgspec.Struct, frozen=True):
    operations: tuple[Operation, ...]
    #: Stop after this many failed operations; None: run them all.
    fail_on_errors: int | None = None


class Outcome(msgspec.Struct, frozen=True):
    """What became of one operation: its entry in the BulkResponse."""

    method: str
    bulk_id: str | None
    #: The SCIM status of a success; 0 for a failure, whose status follows from ``error``.
    status: int
    resource: Resource | None = None
    #: The id the operation addressed or created, when known.
    resource_id: str | None = None
    version: int | None = None
    error: DomainError | None = None


# Reading


def _field(fields: dict[str, Any], name: str) -> Any:
    return fields.get(name.lower())


def _references(value: Any, found: list[str]) -> None:
    # Iterative walk: a body nested deeply enough to matter was refused by the JSON limits.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith(REFERENCE_PREFIX):
                found.append(item[len(REFERENCE_PREFIX):])
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _read_operation(raw: Any) -> Operation:
    if not isinstance(raw, dict):
        return Operation(method="", path="", problem=InvalidSyntax(
            "each operation must be an object"))
    fields = {str(k).lower(): v for k, v in raw.items()}
    method, path = _field(fields, "method"), _field(fields, "path")
    bulk_id, version = _field(fields, "bulkId"), _field(fields, "version")
    shown_method = method.upper() if isinstance(method, str) else ""
    shown_bulk_id = bulk_id if isinstance(bulk_id, str) else None
    problem: DomainError | None = None
    if not isinstance(method, str) or method.upper() not in _METHODS:
        problem = InvalidSyntax("method must be POST, PUT, PATCH or DELETE")
    elif not isinstance(path, str) or not path.strip():
        problem = InvalidSyntax("path is required")
    elif bulk_id is not None and (not isinstance(bulk_id, str) or not bulk_id
                                  or len(bulk_id) > MAX_BULK_ID_LENGTH):
        problem = InvalidSyntax(f"bulkId must be a string of 1 to {MAX_BULK_ID_LENGTH} "
                                "characters")
    elif shown_method == "POST" and bulk_id is None:
        problem = InvalidSyntax("bulkId is required with POST")
    elif version is not None and not isinstance(version, str):
        problem = InvalidSyntax("version must be an entity tag string")
    elif shown_method != "DELETE" and "data" not in fields:
        problem = InvalidSyntax(f"data is required with {shown_method}")
    found: list[str] = []
    if problem is None:
        _references(_field(fields, "data"), found)
        for segment in str(path).split("/"):
            if segment.startswith(REFERENCE_PREFIX):
                found.append(segment[len(REFERENCE_PREFIX):])
    return Operation(
        method=shown_method, path=path if isinstance(path, str) else "",
        bulk_id=shown_bulk_id, version=version if isinstance(version, str) else None,
        data=_field(fields, "data"), references=tuple(dict.fromkeys(found)), problem=problem,
    )


def read_bulk_request(body: Any) -> BulkRequest:
    """The operations of a BulkRequest body. Raises ``InvalidSyntax`` for a body that is
    none (or names one ``bulkId`` twice, which would make references ambiguous),
    ``InvalidValue`` for a bad ``failOnErrors``, ``BulkLimitExceeded`` past
    :data:`MAX_OPERATIONS`. A malformed operation fails alone, in the response."""
    if not isinstance(body, dict):
        raise InvalidSyntax("the body must be a JSON object")
    fields = {str(k).lower(): v for k, v in body.items()}
    schemas = fields.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or BULK_REQUEST not in schemas):
        raise InvalidSyntax(f"schemas must be [{BULK_REQUEST!r}]")
    raw_operations = fields.get("operations")
    if not isinstance(raw_operations, list) or not raw_operations:
        raise InvalidSyntax("Operations must be a non-empty array")
    if len(raw_operations) > MAX_OPERATIONS:
        raise BulkLimitExceeded(
            f"The number of operations ({len(raw_operations)}) exceeds the maxOperations "
            f"({MAX_OPERATIONS}).", "maxOperations")
    fail_on_errors = fields.get("failonerrors")
    if fail_on_errors is not None and (isinstance(fail_on_errors, bool)
                                       or not isinstance(fail_on_errors, int)
                                       or fail_on_errors < 1):
        raise InvalidSyntax("failOnErrors must be an integer of at least 1")
    operations = tuple(_read_operation(raw) for raw in raw_operations)
    seen: set[str] = set()
    for operation in operations:
        if operation.bulk_id is not None and operation.problem is None:
            if operation.bulk_id in seen:
                raise InvalidSyntax(f"bulkId {operation.bulk_id!r} is used more than once")
            seen.add(operation.bulk_id)
    return BulkRequest(operations=operations, fail_on_errors=fail_on_errors)


# Planning


def plan(operations: tuple[Operation, ...]) -> tuple[list[int], set[int]]:
    """The order to run the operations in (request order, each one after those it refers
    to) and the operations that refer to themselves through a cycle of references."""
    by_bulk_id = {op.bulk_id: i for i, op in enumerate(operations)
                  if op.bulk_id is not None and op.problem is None}
    needs = [[by_bulk_id[ref] for ref in op.references if ref in by_bulk_id]
             for op in operations]
    order: list[int] = []
    cyclic: set[int] = set()
    state = [0] * len(operations)  # 0: not seen, 1: on the path, 2: placed
    for start in range(len(operations)):
        if state[start]:
            continue
        state[start] = 1
        path = [start]
        pending = [iter(needs[start])]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                pending.pop()
                done = path.pop()
                state[done] = 2
                order.append(done)
            elif state[following] == 0:
                state[following] = 1
                path.append(following)
                pending.append(iter(needs[following]))
            elif state[following] == 1:
                cyclic.update(path[path.index(following):])
    return order, cyclic


# Running


def _target(path: str, method: str) -> tuple[Resource, str | None]:
    """The resource type and id an operation's ``path`` names, as the router would."""
    parts = path.strip().removeprefix("/").split("/")
    resource = parts[0]
    if resource not in _RESOURCES or len(parts) > 2 or (len(parts) == 2 and not parts[1]):
        raise OperationFailed(404, f"no such endpoint {path!r}")
    if (method == "POST") != (len(parts) == 1):
        raise OperationFailed(405, f"{method} is not allowed on {path!r}")
    return resource, parts[1] if len(parts) == 2 else None


def _substituted(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        if value.startswith(REFERENCE_PREFIX):
            return ids.get(value[len(REFERENCE_PREFIX):], value)
        return value
    if isinstance(value, dict):
        return {key: _substituted(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, ids) for item in value]
    return value


async def _run(ports: WritePorts, method: str, resource: Resource, resource_id: str | None,
               data: Any, version: str | None) -> User | Group | None:
    store = ports.store
    if resource == "Users":
        if method == "POST":
            return await writes.create_user(ports, data)
        assert resource_id is not None
        expected = await writes.expected_version(
            version, lambda: identities.get_user(store, resource_id))
        if method == "PUT":
            return await writes.replace_user(ports, resource_id, data, expected)
        if method == "PATCH":
            return await writes.patch_user(ports, resource_id, data, expected)
        await writes.delete_user(ports, resource_id, expected)
        return None
    if method == "POST":
        return await writes.create_group(ports, data)
    assert resource_id is not None
    expected = await writes.expected_version(
        version, lambda: identities.get_group(store, resource_id))
    if method == "PUT":
        return await writes.replace_group(ports, resource_id, data, expected)
    if method == "PATCH":
        return await writes.patch_group(ports, resource_id, data, expected)
    await writes.delete_group(ports, resource_id, expected)
    return None


_STATUS = {"POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 204}


async def run_bulk(ports: WritePorts, request: BulkRequest, *, may_write: bool
                   ) -> tuple[Outcome, ...]:
    """Run the operations (see the module docstring); their outcomes in the order run.

    Never raises for an operation's failure: it becomes that operation's outcome.
    """
    operations = request.operations
    order, cyclic = plan(operations)
    index_of = {op.bulk_id: i for i, op in enumerate(operations)
                if op.bulk_id is not None and op.problem is None}
    outcomes: list[Outcome] = []
    created: dict[str, str] = {}  # bulkId -> id, for the operations that succeeded
    failures = 0
    for index in order:
        op = operations[index]
        outcome = await _outcome(ports, op, index in cyclic, index_of, created, may_write)
        outcomes.append(outcome)
        if outcome.error is None:
            if op.bulk_id is not None and outcome.resource_id is not None:
                created[op.bulk_id] = outcome.resource_id
            continue
        failures += 1
        if isinstance(outcome.error, StoreUnavailable):
            break
        if request.fail_on_errors is not None and failures >= request.fail_on_errors:
            break
    return tuple(outcomes)


async def _outcome(ports: WritePorts, op: Operation, in_cycle: bool,
                   index_of: dict[str, int], created: dict[str, str], may_write: bool
                   ) -> Outcome:
    resource: Resource | None = None
    resource_id: str | None = None
    try:
        if not may_write:
            raise OperationFailed(403, "the access token lacks the scope scim:write")
        if op.problem is not None:
            raise op.problem
        for ref in op.references:
            if ref not in index_of:
                raise OperationFailed(400, f"no operation has bulkId {ref!r}", "invalidValue")
        if in_cycle:
            raise OperationFailed(409, "the operation refers to itself through a cycle of "
                                  "bulkId references")
        for ref in op.references:
            if ref not in created:
                raise OperationFailed(409, f"the operation with bulkId {ref!r} failed or "
                                      "created nothing to refer to")
        resource, resource_id = _target(op.path, op.method)
        if resource_id is not None:
            resource_id = _substituted(resource_id, created)
        entity = await _run(ports, op.method, resource, resource_id,
                            _substituted(op.data, created), op.version)
    except DomainError as exc:
        return Outcome(method=op.method, bulk_id=op.bulk_id, status=0, resource=resource,
                       resource_id=resource_id, error=exc)
    return Outcome(
        method=op.method, bulk_id=op.bulk_id, status=_STATUS[op.method], resource=resource,
        resource_id=entity.id if entity is not None else resource_id,
        version=entity.version if entity is not None else None,
    )
