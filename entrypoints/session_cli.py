"""``auth-service session list --user USER``: a user's live browser sessions;
``auth-service session revoke --user USER`` (or ``--sid SID``): end them.

``USER`` is a user id or a ``userName`` (case-insensitive); an id is tried first. Ending a
session does what a logout does (:mod:`domain.logout`): the session leaves the store, its
grants are revoked per client policy (``revoke_tokens_on_logout``) and every client of it
with a ``backchannel_logout_uri`` is sent a logout token. The deliveries run in the
background of this process, which waits for them (each is bounded by the sender's timeout
and retries) before it exits, and reports how many were delivered. Logout tokens are signed
with the server's key, so ``SIGNING_KEY_FILE`` is needed to send them: without it the
sessions still end, and the command says that no client was told.

The store is opened with :func:`entrypoints.backends.command_store`: a store that keeps
sessions in the serving process's memory (``hybrid`` without ``REDIS_URL``) is refused
with one line. A store whose users live only in the server (``hybrid`` with ``REDIS_URL``)
still works: ``USER`` is then taken as a user id, as no user name can be looked up.

``--json`` prints one JSON document. Every revocation is one security-event log line on
stderr (``sessions_revoked``, ``actor`` ``cli``), beside a ``session_ended`` per session.

Exit status: 0 done (also when the user had no session); 1 refused (no such user or
session, an id that cannot be one); 2 a bad configuration or store (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from adapters.backchannel_http import HttpLogoutSender
from domain.client_directory import ClientDirectory
from domain.errors import NotFound, StoreUnavailable
from domain.logout import LogoutPorts, end_session_by_sid, end_user_sessions
from domain.outbound import OutboundPolicy
from domain.text import is_storable
from domain.user_sessions import OPERATOR, session_view
from entrypoints.backends import command_store, local_parts
from entrypoints.clients import load_clients
from entrypoints.logging import configure_logging
from entrypoints.settings import ConfigError, Settings
from ports.clock import SystemClock
from ports.events import Events, FieldValue, LoggingEvents
from ports.logout import LogoutNotice
from ports.security import SecretsTokenGenerator
from ports.store import SESSION_PARTS, Store, StorePart

EXIT_FAILURE = 1
ACTOR = "cli"
HINT = ("set REDIS_URL so that sessions are shared, or use the admin API of the running "
        "server (GET /admin/sessions?user_id=..., DELETE /admin/sessions/{sid})")
#: What ending a session changes besides the sessions: the grants issued in them.
REVOKE_PARTS: frozenset[StorePart] = SESSION_PARTS | frozenset({"codes", "tokens"})
#: Longest user id or name accepted (longer ones name nobody).
MAX_USER_LENGTH = 1024


def add_session_commands(commands: Any) -> None:
    """Add the ``session`` command group to the CLI's subparsers."""
    session = commands.add_parser("session", help="list and end users' browser sessions")
    actions = session.add_subparsers(dest="session_command", required=True)

    listing = actions.add_parser("list", help="list a user's live sessions")
    listing.add_argument("--user", required=True, metavar="USERNAME_OR_ID",
                         help="the user's id or userName (case-insensitive)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_list)

    revoke = actions.add_parser(
        "revoke", help="end sessions (revoking their grants per client policy and sending "
                       "back-channel logouts)")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--user", metavar="USERNAME_OR_ID",
                       help="end every session of this user (id or userName)")
    which.add_argument("--sid", help="end the one session with this sid")
    revoke.add_argument("--json", action="store_true", help="print JSON")
    revoke.set_defaults(handler=run_revoke)


class Refused(Exception):
    """A request the command refuses (exit status 1); the message says why."""


# The logout ports of a command


class _CountingEvents:
    """Forwards every event, counting the back-channel outcomes for the summary line."""

    def __init__(self, inner: Events) -> None:
        self.inner = inner
        self.delivered = 0
        self.failed = 0

    def emit(self, name: str, **fields: FieldValue) -> None:
        if name == "backchannel_logout_delivered":
            self.delivered += 1
        elif name == "backchannel_logout_failed":
            self.failed += 1
        self.inner.emit(name, **fields)


class _Unsigned:
    """The sender when this process has no key the clients would accept (no
    ``SIGNING_KEY_FILE``): each notice is reported as failed, none is sent."""

    def __init__(self, events: Events) -> None:
        self.events = events

    def send(self, notices: Sequence[LogoutNotice]) -> None:
        for notice in notices:
            self.events.emit("backchannel_logout_failed", client_id=notice.client_id,
                             sid=notice.sid, user_id=notice.user_id, attempts=0,
                             problem="not sent: SIGNING_KEY_FILE is not set, so this command "
                                     "cannot sign a logout token with the server's key")


class CommandLogout:
    """What a command needs to end sessions: the logout ports, and counts of what ended
    and of the deliveries (:attr:`events`)."""

    def __init__(self, ports: LogoutPorts, events: _CountingEvents) -> None:
        self.ports = ports
        self.events = events
        self.ended = 0

    async def end_user_sessions(self, user_id: str, *, reason: str) -> int:
        """A :class:`~domain.user_sessions.UserSessionEnder` that counts."""
        ended = await end_user_sessions(self.ports, user_id, reason=reason)
        self.ended += ended
        return ended

    def deliveries(self) -> str:
        return (f"back-channel logouts: {self.events.delivered} delivered, "
                f"{self.events.failed} failed")

    def summary(self) -> str:
        """What ended, to append to a command's line (nothing when nothing did)."""
        if not self.ended:
            return ""
        return f"; {self.ended} session(s) ended ({self.deliveries()})"


def drain_seconds(sender: HttpLogoutSender) -> float:
    """How long a command waits for its deliveries: the longest one delivery can take
    (every attempt timing out, with the delays between them), and a second to spare."""
    attempts = len(sender.retry_delays) + 1
    return sender.timeout_seconds * attempts + sum(sender.retry_delays) + 1.0


@asynccontextmanager
async def command_logout(settings: Settings, store: Store) -> AsyncIterator[CommandLogout]:
    """The logout ports of a command over ``store``; on leaving, the back-channel
    deliveries started are waited for, within :func:`drain_seconds`."""
    from adapters.jose_signer import JoseSigner
    from entrypoints.client_cli import ServerSealer
    from entrypoints.signing import load_signer

    events = _CountingEvents(LoggingEvents())
    keyed = bool(settings.signing_key_files)
    # Without the server's key a logout token would not verify at any client: the
    # sessions are ended all the same, the notices are reported unsent.
    signer = load_signer(settings) if keyed else JoseSigner.generated()
    http = HttpLogoutSender(OutboundPolicy(allow_loopback=settings.outbound_allow_loopback),
                            events)
    ports = LogoutPorts(
        store=store, clients=ClientDirectory(load_clients(settings, ServerSealer(settings)), store),
        signer=signer, sender=http if keyed else _Unsigned(events), events=events,
        clock=SystemClock(), token_generator=SecretsTokenGenerator(), issuer=settings.issuer,
        code_seconds=settings.auth_code_expiry_seconds)
    try:
        yield CommandLogout(ports, events)
    finally:
        bound = drain_seconds(http)
        try:
            await asyncio.wait_for(http.drain(), bound)
        except TimeoutError:
            print(f"auth-service: back-channel logouts still under way after {bound:.0f} s "
                  "were abandoned", file=sys.stderr)


# Running a command


async def resolve_user_id(store: Store, value: str) -> tuple[str, str]:
    """The id and a name to show of the user ``value`` names: an id, else a userName.
    A store whose users this process cannot see takes ``value`` as an id."""
    if not value or len(value) > MAX_USER_LENGTH or not is_storable(value):
        raise Refused("the user is not an id or userName a user can have")
    if "users" in local_parts(store):
        return value, value
    try:
        user = await store.get_user(value)
    except NotFound:
        found = await store.find_user_by_name(value)
        if found is None:
            raise Refused(f"no user with the id or userName {value!r}") from None
        user = found
    return user.id, user.user_name


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(settings: Settings, command: str, needs: frozenset[StorePart], work: Any) -> int:
    configure_logging(settings)  # the security-event lines, as the server writes them

    async def run() -> int:
        async with command_store(settings, command=f"session {command}", needs=needs,
                                 hint=HINT) as store:
            result: int = await work(store)
            return result

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        raise ConfigError("STORE_BACKEND", str(exc)) from exc
    except Refused as exc:
        print(f"auth-service: session {command}: {exc}", file=sys.stderr)
    return EXIT_FAILURE


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    """Print the live sessions of ``args.user``, oldest first."""
    async def work(store: Store) -> int:
        user_id, _ = await resolve_user_id(store, args.user)
        sessions = await store.list_sessions(user_id, SystemClock().now())
        if args.json:
            print(json.dumps([session_view(s) for s in sessions], indent=2))
            return 0
        if not sessions:
            print(f"auth-service: no live session for {args.user}", file=sys.stderr)
        for s in sessions:
            print(f"{s.sid}\tcreated {_time(s.created_at)}\tauth_time {_time(s.auth_time)}\t"
                  f"amr {' '.join(s.amr)}\tclients {' '.join(s.clients) or '-'}")
        return 0

    return _run(settings, "list", SESSION_PARTS, work)


def run_revoke(settings: Settings, args: argparse.Namespace) -> int:
    """End every session of ``args.user``, or the session ``args.sid``."""
    async def work(store: Store) -> int:
        if args.sid is not None and (len(args.sid) > 255 or not is_storable(args.sid)):
            raise Refused("the sid is not one a session can have")
        user_id, shown = (None, "") if args.user is None else await resolve_user_id(
            store, args.user)
        async with command_logout(settings, store) as logout:
            if user_id is not None:
                ended = await logout.end_user_sessions(user_id, reason=OPERATOR)
                logout.ports.events.emit("sessions_revoked", actor=ACTOR, user_id=user_id,
                                         sessions=ended)
            else:
                ended = int(await end_session_by_sid(logout.ports, args.sid, reason=OPERATOR))
                if not ended:
                    raise Refused(f"no live session with the sid {args.sid!r}")
                logout.ports.events.emit("sessions_revoked", actor=ACTOR, sid=args.sid,
                                         sessions=ended)
        if args.json:
            print(json.dumps({"user_id": user_id, "sid": args.sid, "sessions_ended": ended,
                              "backchannel_delivered": logout.events.delivered,
                              "backchannel_failed": logout.events.failed}, indent=2))
        else:
            whose = f"of {shown} ({user_id})" if user_id is not None else args.sid
            print(f"ended {ended} session(s) {whose}; {logout.deliveries()}")
        return 0

    return _run(settings, "revoke", REVOKE_PARTS, work)
