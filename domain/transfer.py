"""Copying a store to another backend: ``copy_store``, ``export_store``, ``import_store``.

A copy is a sequence of steps, one per part of the store (:data:`COPY_STEPS`), in an order
where every record only refers to parts already copied (members to users). Each step pages
through the source with the part's ``export_*`` method and writes each batch with the
target's ``import_*`` method (see the transfer Protocols in :mod:`ports.store`), so:

- a batch is atomic in the target: a failure midway leaves whole batches only, which are
  consistent on their own, and the error names the part;
- writing is idempotent: a rerun writes only what is missing or different, reports the
  rest as unchanged, and so finishes an interrupted copy;
- expired records are not copied, and security state only moves forward (a revoked token
  stays revoked, a consumed code or rotated refresh token does not come back).

A new part of the store (clients, sessions, consents) adds its transfer Protocol to the
port and appends one :class:`CopyStep` to :data:`COPY_STEPS`, after the parts it refers to.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from domain.clients import Client, InitialAccessToken
from domain.consent import ConsentRecord
from domain.device import DeviceAuthorization
from domain.entities import (
    AccessToken,
    AccountToken,
    AuthorizationCode,
    Group,
    RefreshToken,
    StoreCounts,
)
from domain.errors import DomainError, InvalidValue
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker, UserRecord
from domain.sessions import SessionRecord
from ports.clock import Clock
from ports.store import Store

R = TypeVar("R")

#: Name of the JSON Lines format, and its version. A reader refuses any other.
FORMAT = "auth-service-store"
FORMAT_VERSION = 1
DEFAULT_BATCH_SIZE = 500

#: Called after every batch with the part's name, records done and the source's total when
#: known (a progress bar); never called for an empty part.
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class CopyStep(Generic[R]):
    """How one part of the store is copied.

    ``read(store, cursor, limit, now)`` and ``write(store, records, now)`` are the part's
    ``export_*`` and ``import_*`` port methods; ``record_type`` decodes the part's JSON
    lines; ``total``, when the store's counts include the part, gives the total for
    progress.
    """

    name: str
    record_type: type[R]
    read: Callable[[Store, str | None, int, int], Awaitable[Batch[R]]]
    write: Callable[[Store, tuple[R, ...], int], Awaitable[int]]
    total: Callable[[StoreCounts], int] | None = None


#: Every part of the store, in copy order. Users come before the groups that list them;
#: clients (and the initial access tokens that register more) before the codes and tokens
#: issued to them; access tokens before the refresh tokens and markers of their grants, so
#: that a rerun after a rotation in the source first sees the old access token revoked.
COPY_STEPS: list[CopyStep[Any]] = [
    CopyStep(
        "users", UserRecord,
        lambda s, cursor, limit, now: s.export_users(cursor, limit, now),
        lambda s, records, now: s.import_users(records, now),
        lambda counts: counts.users,
    ),
    CopyStep(
        "groups", Group,
        lambda s, cursor, limit, now: s.export_groups(cursor, limit, now),
        lambda s, records, now: s.import_groups(records, now),
        lambda counts: counts.groups,
    ),
    CopyStep(
        "clients", Client,
        lambda s, cursor, limit, now: s.export_clients(cursor, limit, now),
        lambda s, records, now: s.import_clients(records, now),
        lambda counts: counts.clients,
    ),
    CopyStep(
        "initial_access_tokens", InitialAccessToken,
        lambda s, cursor, limit, now: s.export_initial_access_tokens(cursor, limit, now),
        lambda s, records, now: s.import_initial_access_tokens(records, now),
    ),
    CopyStep(
        "codes", AuthorizationCode,
        lambda s, cursor, limit, now: s.export_codes(cursor, limit, now),
        lambda s, records, now: s.import_codes(records, now),
        lambda counts: counts.codes,
    ),
    CopyStep(
        "consumed_codes", ConsumedCodeRecord,
        lambda s, cursor, limit, now: s.export_consumed_codes(cursor, limit, now),
        lambda s, records, now: s.import_consumed_codes(records, now),
    ),
    CopyStep(
        "access_tokens", AccessToken,
        lambda s, cursor, limit, now: s.export_access_tokens(cursor, limit, now),
        lambda s, records, now: s.import_access_tokens(records, now),
        lambda counts: counts.access_tokens,
    ),
    CopyStep(
        "refresh_tokens", RefreshToken,
        lambda s, cursor, limit, now: s.export_refresh_tokens(cursor, limit, now),
        lambda s, records, now: s.import_refresh_tokens(records, now),
        lambda counts: counts.refresh_tokens,
    ),
    CopyStep(
        "reuse_markers", ReuseMarker,
        lambda s, cursor, limit, now: s.export_reuse_markers(cursor, limit, now),
        lambda s, records, now: s.import_reuse_markers(records, now),
    ),
    CopyStep(
        "claims", Claim,
        lambda s, cursor, limit, now: s.export_claims(cursor, limit, now),
        lambda s, records, now: s.import_claims(records, now),
    ),
    CopyStep(
        "sessions", SessionRecord,
        lambda s, cursor, limit, now: s.export_sessions(cursor, limit, now),
        lambda s, records, now: s.import_sessions(records, now),
        lambda counts: counts.sessions,
    ),
    CopyStep(
        "consents", ConsentRecord,
        lambda s, cursor, limit, now: s.export_consents(cursor, limit, now),
        lambda s, records, now: s.import_consents(records, now),
        lambda counts: counts.consents,
    ),
    CopyStep(
        "device_authorizations", DeviceAuthorization,
        lambda s, cursor, limit, now: s.export_device_authorizations(cursor, limit, now),
        lambda s, records, now: s.import_device_authorizations(records, now),
        lambda counts: counts.device_authorizations,
    ),
    CopyStep(
        "account_tokens", AccountToken,
        lambda s, cursor, limit, now: s.export_account_tokens(cursor, limit, now),
        lambda s, records, now: s.import_account_tokens(records, now),
        lambda counts: counts.account_tokens,
    ),
]


class PartReport(msgspec.Struct, frozen=True):
    """What a copy did to one part: records read from the source, and how many of them
    changed the target (the rest it already had, or had superseded)."""

    name: str
    read: int = 0
    written: int = 0

    @property
    def unchanged(self) -> int:
        return self.read - self.written


class TransferReport(msgspec.Struct, frozen=True):
    """One :class:`PartReport` per part, in copy order."""

    parts: tuple[PartReport, ...]

    @property
    def written(self) -> int:
        return sum(part.written for part in self.parts)

    def part(self, name: str) -> PartReport:
        for part in self.parts:
            if part.name == name:
                return part
        return PartReport(name)


class TransferFailed(DomainError):
    """A copy or import stopped in part ``part``: whole batches were written before, none
    after. ``report`` holds what was done, ``cause`` the error. Rerunning finishes it."""

    def __init__(self, part: str, report: TransferReport, cause: DomainError) -> None:
        done = report.part(part)
        super().__init__(
            f"{part}: {cause} (after {done.read} record(s) of this part; "
            "the target holds whole batches only: rerun to finish)"
        )
        self.part = part
        self.report = report
        self.cause = cause


def _step_named(name: str, steps: Iterable[CopyStep[Any]]) -> CopyStep[Any] | None:
    return next((step for step in steps if step.name == name), None)


async def _totals(store: Store, now: int, wanted: bool) -> StoreCounts | None:
    if not wanted:
        return None
    try:
        return await store.counts(now)
    except DomainError:
        # Totals only feed the progress bar; the copy itself will report a real failure.
        return None


def _at_least(total: int | None, done: int) -> int | None:
    """The total to show: the source may have grown since it was counted."""
    return None if total is None else max(total, done)


class _Tally:
    """Counts per part while a transfer runs, in the order parts are met."""

    def __init__(self) -> None:
        self._parts: dict[str, PartReport] = {}

    def start(self, name: str) -> None:
        self._parts.setdefault(name, PartReport(name))

    def add(self, name: str, read: int, written: int) -> PartReport:
        old = self._parts.get(name, PartReport(name))
        new = PartReport(name, old.read + read, old.written + written)
        self._parts[name] = new
        return new

    def report(self) -> TransferReport:
        return TransferReport(tuple(self._parts.values()))


async def copy_store(
    source: Store,
    target: Store,
    clock: Clock,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    steps: Iterable[CopyStep[Any]] = COPY_STEPS,
) -> TransferReport:
    """Copy every part of ``source`` into ``target``, batch by batch; return the counts.

    The target must have its schema (open it with its migrations applied). Each batch is
    read at the clock's current time, so what expires during a long copy is not copied.
    Raises :class:`TransferFailed` (with the counts so far) on any store error.
    """
    size = max(batch_size, 1)
    tally = _Tally()
    steps = list(steps)
    totals = await _totals(source, clock.now(), progress is not None)
    for step in steps:
        tally.start(step.name)
        total = step.total(totals) if totals is not None and step.total is not None else None
        cursor: str | None = None
        while True:
            now = clock.now()
            try:
                batch = await step.read(source, cursor, size, now)
                records = batch.records
                written = await step.write(target, records, now) if records else 0
            except DomainError as exc:
                raise TransferFailed(step.name, tally.report(), exc) from exc
            if records:
                done = tally.add(step.name, len(records), written)
                if progress is not None:
                    progress(step.name, done.read, _at_least(total, done.read))
            cursor = batch.cursor
            if cursor is None:
                break
    return tally.report()


class _Header(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    version: int
    exported_at: int
    parts: tuple[str, ...]


class _Line(msgspec.Struct, frozen=True, kw_only=True):
    """A record line (``part``, ``record``) or the last line (``end``, ``counts``)."""

    part: str | None = None
    record: msgspec.Raw = msgspec.Raw(b"")
    end: bool = False
    counts: dict[str, int] | None = None


class _End(msgspec.Struct, frozen=True, kw_only=True):
    end: bool
    counts: dict[str, int]


_encode = msgspec.json.Encoder().encode


async def export_store(
    source: Store,
    clock: Clock,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    steps: Iterable[CopyStep[Any]] = COPY_STEPS,
) -> AsyncIterator[bytes]:
    """Every record of ``source`` as JSON Lines (each ``bytes`` is one line, without its
    newline): a header naming the format and its version, one line per record
    (``{"part": ..., "record": ...}``), and a last line with the counts per part, by which
    a reader tells a complete file from a truncated one.

    The lines hold password hashes and TOTP seeds as the store keeps them: protect the
    file as you protect the database. Raises :class:`TransferFailed` on a store error.
    """
    size = max(batch_size, 1)
    steps = list(steps)
    tally = _Tally()
    totals = await _totals(source, clock.now(), progress is not None)
    yield _encode(_Header(format=FORMAT, version=FORMAT_VERSION, exported_at=clock.now(),
                          parts=tuple(step.name for step in steps)))
    for step in steps:
        tally.start(step.name)
        total = step.total(totals) if totals is not None and step.total is not None else None
        prefix = b'{"part":' + _encode(step.name) + b',"record":'
        cursor: str | None = None
        while True:
            try:
                batch = await step.read(source, cursor, size, clock.now())
            except DomainError as exc:
                raise TransferFailed(step.name, tally.report(), exc) from exc
            for record in batch.records:
                yield prefix + _encode(record) + b"}"
            if batch.records:
                done = tally.add(step.name, len(batch.records), len(batch.records))
                if progress is not None:
                    progress(step.name, done.read, _at_least(total, done.read))
            cursor = batch.cursor
            if cursor is None:
                break
    counts = {part.name: part.read for part in tally.report().parts}
    yield _encode(_End(end=True, counts=counts))


async def _lines(lines: AsyncIterable[bytes | str] | Iterable[bytes | str]
                 ) -> AsyncIterator[bytes | str]:
    if isinstance(lines, AsyncIterable):
        async for line in lines:
            yield line
    else:
        for line in lines:
            yield line


async def import_store(
    target: Store,
    lines: AsyncIterable[bytes | str] | Iterable[bytes | str],
    clock: Clock,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    steps: Iterable[CopyStep[Any]] = COPY_STEPS,
) -> TransferReport:
    """Write the records of an :func:`export_store` file into ``target``, in batches.

    Idempotent and batch-atomic as :func:`copy_store`. Raises ``InvalidValue`` naming the
    line for a file that is not of this format and version, a malformed line or an unknown
    part, and for a file without its last line (truncated: what came before it is written,
    in whole batches); :class:`TransferFailed` on a store error.
    """
    size = max(batch_size, 1)
    steps = list(steps)
    tally = _Tally()
    pending: list[Any] = []
    current: CopyStep[Any] | None = None
    trailer: dict[str, int] | None = None
    header_seen = False
    line_no = 0

    async def flush() -> None:
        if current is None or not pending:
            return
        batch = tuple(pending)
        pending.clear()
        try:
            written = await current.write(target, batch, clock.now())
        except DomainError as exc:
            raise TransferFailed(current.name, tally.report(), exc) from exc
        done = tally.add(current.name, len(batch), written)
        if progress is not None:
            progress(current.name, done.read, None)

    async for raw in _lines(lines):
        line_no += 1
        text = raw.strip()
        if not text:
            continue
        if trailer is not None:
            raise InvalidValue(f"line {line_no}: data after the last line")
        try:
            if not header_seen:
                header = msgspec.json.decode(text, type=_Header)
                if header.format != FORMAT or header.version != FORMAT_VERSION:
                    raise InvalidValue(
                        f"line {line_no}: format {header.format!r} version {header.version}, "
                        f"expected {FORMAT!r} version {FORMAT_VERSION}"
                    )
                header_seen = True
                continue
            line = msgspec.json.decode(text, type=_Line)
            if line.end:
                trailer = line.counts or {}
                continue
            step = _step_named(line.part or "", steps)
            if step is None:
                raise InvalidValue(f"line {line_no}: unknown part {line.part!r}")
            if not line.record:
                raise InvalidValue(f"line {line_no}: no record")
            record = msgspec.json.decode(line.record, type=step.record_type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            what = "a record" if header_seen else "the header of an auth-service store export"
            raise InvalidValue(f"line {line_no}: not {what}: {exc}") from exc
        if step is not current:
            await flush()
            current = step
            tally.start(step.name)
        pending.append(record)
        if len(pending) >= size:
            await flush()
    await flush()
    if not header_seen:
        raise InvalidValue("the file is empty")
    if trailer is None:
        raise InvalidValue(
            f"the file ends at line {line_no} without its last line (truncated?); "
            "the records before it were written"
        )
    read = {part.name: part.read for part in tally.report().parts}
    expected = {name: count for name, count in trailer.items() if count}
    if read != expected:
        raise InvalidValue(f"the file's last line counts {expected}, but it holds {read}")
    return tally.report()
