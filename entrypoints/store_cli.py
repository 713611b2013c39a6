"""``auth-service store copy|export|import``: move a whole store to another backend.

``copy --from BACKEND[:URL] --to BACKEND[:URL]`` copies every part of the store (see
``domain/transfer.py``), batch by batch; ``export`` writes the same records as JSON Lines
and ``import`` reads them back. The target is opened with its migrations applied, so an
empty database gets its schema first. A rerun changes nothing that is already there, so it
finishes an interrupted copy.

Exit status: 0 done; 1 a store failed midway (one line; the target holds whole batches
only); 2 a bad backend, URL, option or file (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import msgspec

from domain.errors import DomainError, InvalidValue, StoreMisconfigured, StoreUnavailable
from domain.transfer import (
    DEFAULT_BATCH_SIZE,
    TransferFailed,
    TransferReport,
    copy_store,
    export_store,
    import_store,
)
from entrypoints.backends import as_config_error, describe, local_parts, open_store
from entrypoints.settings import ConfigError, Settings, installed_store_backends
from ports.clock import SystemClock
from ports.store import Store
from ports.store_settings import StoreSettings

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

class _Counts(msgspec.Struct):
    counts: dict[str, int]


class BadStore(Exception):
    """A store named on the command line cannot be opened; the message says why."""


def add_store_commands(commands: Any) -> None:
    """Add the ``store`` command group to the CLI's subparsers."""
    store = commands.add_parser(
        "store", help="copy, export or import a whole store (users, groups, tokens, ...)"
    )
    actions = store.add_subparsers(dest="store_command", required=True)
    spec_help = "BACKEND[:URL]: an installed backend and its connection string, e.g. " \
                "sql:postgresql://...; without a URL, the environment's"
    copy = actions.add_parser("copy", help="copy every record from one store into another")
    copy.add_argument("--from", dest="source", required=True, metavar="BACKEND[:URL]",
                      help=spec_help)
    copy.add_argument("--to", dest="target", required=True, metavar="BACKEND[:URL]",
                      help=spec_help + "; its migrations are applied first")
    copy.set_defaults(handler=run_copy)
    export = actions.add_parser("export", help="write every record of a store as JSON Lines")
    export.add_argument("--from", dest="source", required=True, metavar="BACKEND[:URL]",
                        help=spec_help)
    export.add_argument("--output", "-o", default="-",
                        help="file to write (created with mode 0600), or - for stdout")
    export.set_defaults(handler=run_export)
    imp = actions.add_parser("import", help="write the records of an export into a store")
    imp.add_argument("--to", dest="target", required=True, metavar="BACKEND[:URL]",
                     help=spec_help + "; its migrations are applied first")
    imp.add_argument("--input", "-i", default="-", help="file to read, or - for stdin")
    imp.set_defaults(handler=run_import)
    for parser in (copy, export, imp):
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"records per batch (default {DEFAULT_BATCH_SIZE})")


def parse_store_spec(spec: str, settings: Settings) -> StoreSettings:
    """``BACKEND[:URL]`` as the settings its ``open_store`` receives.

    ``BACKEND`` is any installed backend (``auth_service.stores``). The URL is given to the
    backend both as ``url`` and as ``redis_url``, so each backend finds it where it reads its
    connection string (``sql`` and plugins: ``url``; ``hybrid``: ``redis_url``); without a
    URL, the environment's settings (``STORE_URL``/``DATABASE_URL``, ``REDIS_URL``) apply.
    """
    backend, _, url = spec.partition(":")
    installed = installed_store_backends()
    if backend not in installed:
        raise BadStore(f"unknown backend {backend!r} in {spec!r}: choose one of "
                       f"{', '.join(sorted(installed))}")
    environment = msgspec.structs.replace(settings.store, backend=backend)
    if not url:
        return environment
    return msgspec.structs.replace(environment, url=url, url_variable=spec, redis_url=url)


def _where(settings: StoreSettings) -> tuple[str, str | None, str | None]:
    return settings.backend, settings.url, settings.redis_url


async def open_named_store(settings: StoreSettings, *, migrate: bool) -> Store:
    """Open the store ``settings`` name; with ``migrate``, pending migrations are applied.

    The store must hold all of its data where this process can reach it: a store that keeps
    parts in the serving process's memory (``ProcessLocal``, e.g. ``hybrid``'s identities)
    would be copied from or into an empty private copy, so it is refused. Raises
    :class:`BadStore` for an unknown backend, a missing or malformed URL, a store that
    cannot be reached, or one out of reach.
    """
    try:
        store = await open_store(settings, migrate=migrate)
    except (StoreUnavailable, StoreMisconfigured) as exc:
        raise BadStore(f"{settings.backend}: {as_config_error(settings, exc)}") from exc
    except ConfigError as exc:
        raise BadStore(str(exc)) from exc
    out_of_reach = local_parts(store)
    if out_of_reach:
        await store.close()
        raise BadStore(
            f"{settings.backend} keeps its {describe(out_of_reach)} in the memory of the "
            "serving process, out of this command's reach")
    return store


class ProgressLine:
    """``users 1200/5000`` on one rewritten stderr line, when stderr is a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._part: str | None = None

    @property
    def enabled(self) -> bool:
        return self._enabled

    def __call__(self, part: str, done: int, total: int | None) -> None:
        if part != self._part and self._part is not None:
            self._stream.write("\n")
        self._part = part
        self._stream.write(f"\r{part} {done}" + (f"/{total}" if total is not None else ""))
        self._stream.flush()

    def end(self) -> None:
        if self._part is not None:
            self._stream.write("\n")
            self._stream.flush()
            self._part = None


def summary_lines(report: TransferReport) -> list[str]:
    """One line per part, then the total."""
    lines = [
        f"{part.name}: {part.read} read, {part.written} written, {part.unchanged} unchanged"
        for part in report.parts
    ]
    read = sum(part.read for part in report.parts)
    lines.append(f"total: {read} read, {report.written} written, {read - report.written} "
                 "unchanged")
    return lines


def _fail(message: str, status: int) -> int:
    print(f"auth-service: {message}", file=sys.stderr)
    return status


def _batch_size(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise BadStore("--batch-size must be at least 1")
    return int(args.batch_size)


def _run(command: str, work: Any) -> int:
    """Run one command's coroutine and turn its failures into one line and a status."""
    progress = ProgressLine(sys.stderr)
    try:
        return int(asyncio.run(work(progress)))
    except BadStore as exc:
        progress.end()
        return _fail(f"store {command}: {exc}", EXIT_USAGE)
    except InvalidValue as exc:
        progress.end()
        return _fail(f"store {command}: {exc}", EXIT_USAGE)
    except TransferFailed as exc:
        progress.end()
        return _fail(f"store {command} failed: {exc}", EXIT_FAILURE)
    except DomainError as exc:
        progress.end()
        return _fail(f"store {command} failed: {exc}", EXIT_FAILURE)
    except KeyboardInterrupt:
        progress.end()
        return _fail(f"store {command} interrupted: the target holds whole batches only; "
                     "rerun to finish", EXIT_INTERRUPTED)


def run_copy(settings: Settings, args: argparse.Namespace) -> int:
    """``store copy``: every part from ``--from`` into ``--to``."""

    async def work(progress: ProgressLine) -> int:
        size = _batch_size(args)
        source_spec = parse_store_spec(args.source, settings)
        target_spec = parse_store_spec(args.target, settings)
        if _where(source_spec) == _where(target_spec):
            raise BadStore("--from and --to name the same store")
        async with _opened(source_spec, migrate=False) as source, \
                _opened(target_spec, migrate=True) as target:
            report = await copy_store(
                source, target, SystemClock(), batch_size=size,
                progress=progress if progress.enabled else None,
            )
        progress.end()
        print("\n".join(summary_lines(report)))
        return 0

    return _run("copy", work)


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    """``store export``: every record of ``--from`` as JSON Lines to ``--output``."""

    async def work(progress: ProgressLine) -> int:
        size = _batch_size(args)
        spec = parse_store_spec(args.source, settings)
        async with _opened(spec, migrate=False) as source:
            with _output(args.output) as out:
                lines = export_store(
                    source, SystemClock(), batch_size=size,
                    progress=progress if progress.enabled else None,
                )
                last = b""
                async for line in lines:
                    out.write(line + b"\n")
                    last = line
        progress.end()
        # The last line of an export counts its records per part.
        counts: dict[str, int] = msgspec.json.decode(last, type=_Counts).counts
        # stdout may be the export itself: the summary then goes to stderr.
        summary = sys.stderr if args.output == "-" else sys.stdout
        for name, count in counts.items():
            print(f"{name}: {count} exported", file=summary)
        print(f"total: {sum(counts.values())} exported", file=summary)
        return 0

    return _run("export", work)


def run_import(settings: Settings, args: argparse.Namespace) -> int:
    """``store import``: the records of an export from ``--input`` into ``--to``."""

    async def work(progress: ProgressLine) -> int:
        size = _batch_size(args)
        spec = parse_store_spec(args.target, settings)
        with _input(args.input) as lines:
            async with _opened(spec, migrate=True) as target:
                report = await import_store(
                    target, lines, SystemClock(), batch_size=size,
                    progress=progress if progress.enabled else None,
                )
        progress.end()
        print("\n".join(summary_lines(report)))
        return 0

    return _run("import", work)


@contextlib.asynccontextmanager
async def _opened(settings: StoreSettings, *, migrate: bool) -> AsyncIterator[Store]:
    store = await open_named_store(settings, migrate=migrate)
    try:
        yield store
    finally:
        await store.close()


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        # The export holds password hashes and TOTP seeds: readable by its owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise BadStore(f"cannot write {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as out:
        yield out


@contextlib.contextmanager
def _input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise BadStore(f"cannot read {path}: {exc.strerror}") from exc
    with stream:
        yield stream
