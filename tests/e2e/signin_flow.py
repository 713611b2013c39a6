"""Driving the sign-in pages like a browser would: parse the HTML form, submit its fields.

Shared by tests/e2e/test_authorize*.py, test_sso*.py, test_userinfo.py and test_mfa*.py.
The app runs over a ``MemoryStore`` (or the backend a ``StoreBackend`` names) with a fake
clock (fixed-window counters and TOTP steps stay deterministic) and a generated signing key.

:func:`visit` follows a whole authorization like a browser (sign-in, TOTP, consent pages,
as far as it is given what to type) and reports which pages it was shown: whether single
sign-on spared the user a password form, for instance.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from argon2 import PasswordHasher
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from adapters.jose_signer import JoseSigner
from adapters.memory.store import MemoryStore
from adapters.passwords import Argon2PasswordHasher
from domain.entities import Email, User
from domain.mfa import open_factor, seal_factor
from domain.sessions import Session, hash_session_id
from entrypoints.app import create_app
from entrypoints.container import build_container
from entrypoints.http.services import Services
from entrypoints.settings import load_settings
from ports.mail import Mailer
from ports.store import Store
from tests.doubles import FakeClock, RecordingEvents
from tests.e2e.conftest import StoreBackend

ISSUER = "http://auth.test"
T0 = 1_700_000_010  # 10 seconds into a TOTP step
PUBLIC_ID = "spa"
PUBLIC_REDIRECT = "http://127.0.0.1:9999/callback"
CONFIDENTIAL_ID = "web"
CONFIDENTIAL_SECRET = "w" * 40
CONFIDENTIAL_REDIRECT = "https://web.example.test/cb?tenant=1"
PASSWORD = "correct horse battery staple"
#: A public client of another organisation: not first_party, so it asks for consent.
PARTNER_ID = "partner"
PARTNER_REDIRECT = "https://partner.example.test/cb"
#: A first-party client that requires a two-factor sign-in.
SECURE_ID = "secure"
SECURE_REDIRECT = "https://secure.example.test/cb"

_CLIENTS_TOML = f"""
[[clients]]
client_id = "{PUBLIC_ID}"
name = "Single-Page App"
public = true
redirect_uris = ["{PUBLIC_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email", "offline_access", "read", "mfa"]
# The operator's own applications: single sign-on without a consent page.
first_party = true

[[clients]]
client_id = "{CONFIDENTIAL_ID}"
name = "Web <App>"
secret = "{CONFIDENTIAL_SECRET}"
redirect_uris = ["{CONFIDENTIAL_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email", "offline_access"]
# A legacy confidential client: it opted out of PKCE, which only such a client may do.
require_pkce = false
first_party = true

[[clients]]
client_id = "{PARTNER_ID}"
name = "Partner App"
public = true
redirect_uris = ["{PARTNER_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email", "offline_access", "read"]

[[clients]]
client_id = "{SECURE_ID}"
name = "Payroll"
public = true
redirect_uris = ["{SECURE_REDIRECT}"]
scopes = ["openid", "profile"]
require_mfa = true
first_party = true
"""

#: argon2 with small costs: these tests check the flow, not the hash's strength.
HASHER = Argon2PasswordHasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
#: One generated key for every harness without SIGNING_KEY_FILE (RSA generation is slow).
SIGNER = JoseSigner.generated()


class Form(HTMLParser):
    """One form of a page (the first, or the ``index``-th from 0): its action, method,
    named inputs and submit buttons."""

    def __init__(self, html: str, index: int = 0) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, list[str]] = {}
        self.labels: dict[str, str] = {}
        self.autofocus: list[str] = []
        self._forms = 0
        self._wanted = index + 1
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        mine = self._forms == self._wanted
        if "autofocus" in a:
            self.autofocus.append(a.get("name") or a.get("id") or tag)
        if tag == "form":
            self._forms += 1
            if self._forms == self._wanted:
                self.action = a.get("action", "")
                self.method = a.get("method", "get").lower()
        elif mine and tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif mine and tag == "button" and a.get("name"):
            self.buttons.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "label" and a.get("for"):
            self.labels[a["for"]] = ""


@dataclass
class Harness:
    """A running app over a memory store, with its fake clock and recorded events."""

    client: TestClient[Any]
    store: Store
    clock: FakeClock
    events: RecordingEvents

    @property
    def services(self) -> Services:
        services: Services = self.client.app.state.services
        return services

    def totp_seed(self, user_id: str) -> str | None:
        """The user's confirmed TOTP seed, opened from the sealed value the store holds."""
        credentials = self.run(self.store.get_credentials(user_id))
        factor = open_factor(self.services.secret_sealer, credentials)
        return factor.secret if factor is not None else None

    def run(self, coroutine: Any) -> Any:
        """Run a store call from the test thread, on the app's event loop (a PostgreSQL
        pool is bound to it)."""
        async def awaited() -> Any:
            return await coroutine

        return self.client.blocking_portal.call(awaited)

    def session(self) -> Session | None:
        """The live session the browser's cookie names, read from the store."""
        value = self.client.cookies.get("session")
        if not value:
            return None
        found: Session | None = self.run(self.store.get_session(hash_session_id(value),
                                                                self.clock.now()))
        return found

    def add_user(
        self,
        user_name: str = "alice",
        password: str | None = PASSWORD,
        *,
        active: bool = True,
        totp_secret: str | None = None,
        email: str | None = "alice@example.test",
    ) -> User:
        async def create() -> User:
            password_hash = await HASHER.hash(password) if password is not None else None
            user = await self.store.create_user(
                User(user_name=user_name, active=active, display_name=f"{user_name.title()} Doe",
                     emails=(Email(value=email, primary=True),) if email else ()),
                password_hash=password_hash,
            )
            if totp_secret is not None:
                sealed = seal_factor(self.services.secret_sealer, user.id, totp_secret)
                await self.store.set_totp(user.id, sealed, confirmed=True)
            return user

        result: User = self.run(create())
        return result


#: The peer address of every request in a harness with ``peer=LOAD_BALANCER``.
LOAD_BALANCER = "10.0.0.1"


def from_peer(app: Litestar, host: str) -> None:
    """Make every request reach ``app`` from the TCP peer ``host``, as an instance behind a
    load balancer sees it (Litestar's TestClient always says "testclient")."""
    inner = app.asgi_handler

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["client"] = (host, 40000)
        await inner(scope, receive, send)

    app.asgi_handler = handler  # type: ignore[method-assign]


def forwarded_for(address: str) -> dict[str, str]:
    """The header a load balancer adds for a client at ``address``."""
    return {"X-Forwarded-For": address}


@contextmanager
def harness(
    tmp_path: Path, *, store: Store | None = None, clock: FakeClock | None = None,
    peer: str | None = None, backend: StoreBackend | None = None, mailer: Mailer | None = None,
    **env: str,
) -> Iterator[Harness]:
    """The app with first-party clients (a public one with PKCE, a confidential one, one
    that requires MFA) and a third-party one, a fake clock, no users.

    Passing another harness's ``store`` and ``clock`` makes a second instance sharing them;
    ``peer`` puts it behind a proxy at that address (:func:`from_peer`). ``backend`` runs
    the app on that backend instead of a fresh ``MemoryStore``. ``mailer`` is the app's
    mail sender (none by default: no email features).
    """
    clients_file = tmp_path / "clients.toml"
    clients_file.write_text(_CLIENTS_TOML)
    if backend is not None:
        env = {**backend.env, **env}
    settings = load_settings({"CLIENTS_FILE": str(clients_file), "EXTERNAL_BASE_URL": ISSUER,
                              **env})
    container = build_container(settings)
    clock = clock or FakeClock(T0)
    events = RecordingEvents()
    container.clock.override(providers.Object(clock))
    container.events.override(providers.Object(events))
    container.password_hasher.override(providers.Object(HASHER))
    if "SIGNING_KEY_FILE" not in env:
        container.signer.override(providers.Object(SIGNER))
    if mailer is not None:
        container.mailer.override(providers.Object(mailer))
    if store is None and backend is not None:
        store = backend.instance
    elif store is None:
        store = MemoryStore()
    app = create_app(settings, store=store, container=container)
    if peer is not None:
        from_peer(app, peer)
    with TestClient(app, base_url=ISSUER) as client:
        services: Services = app.state.services
        yield Harness(client, services.store, clock, events)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def auth_params(**overrides: str | None) -> dict[str, str]:
    """A valid request of the public client, with overrides (None removes a parameter)."""
    _, challenge = pkce_pair()
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": PUBLIC_ID, "redirect_uri": PUBLIC_REDIRECT,
        "scope": "openid profile email offline_access", "state": "st-123", "nonce": "n-456",
        "code_challenge": challenge, "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def submit(
    client: TestClient[Any], page: httpx.Response, headers: dict[str, str] | None = None,
    **values: str,
) -> httpx.Response:
    """Fill the page's form with ``values`` (keeping its hidden fields) and submit it."""
    form = Form(page.text)
    assert form.method == "post" and form.action, page.text
    data = {**form.fields, **values}
    if "action" not in data and form.buttons.get("action"):
        data["action"] = form.buttons["action"][0]
    return client.post(form.action, data=data, headers=headers, follow_redirects=False)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect's Location, checking it is a redirect."""
    assert response.status_code == 303, (response.status_code, response.text)
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return {k: v[0] for k, v in query.items()}


def sign_in(
    h: Harness,
    params: dict[str, str],
    *,
    username: str = "alice",
    password: str = PASSWORD,
    totp_secret: str | None = None,
) -> httpx.Response:
    """GET the sign-in page, submit the password (and a TOTP code); the final response.

    A browser that is signed in already asks with ``prompt=login`` (unless ``params`` say
    otherwise), so that the pages are shown rather than answered by the session.
    """
    if "prompt" not in params and h.client.cookies.get("session"):
        params = {**params, "prompt": "login"}
    page = h.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert page.status_code == 200, page.text
    response = submit(h.client, page, username=username, password=password)
    if totp_secret is not None:
        assert response.status_code == 200, response.text
        assert 'name="code"' in response.text
        response = submit(h.client, response, code=pyotp.TOTP(totp_secret).at(h.clock.now()))
    return response


def exchange(
    h: Harness, code: str, verifier: str, *, client_id: str = PUBLIC_ID,
    redirect_uri: str = PUBLIC_REDIRECT,
) -> httpx.Response:
    return h.client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier,
    })


def full_flow(
    h: Harness,
    *,
    totp_secret: str | None = None,
    scope: str = "openid profile email offline_access",
    nonce: str | None = "n-456",
) -> dict[str, Any]:
    """Sign in through the pages and exchange the code; the token response's JSON."""
    verifier, challenge = pkce_pair()
    response = sign_in(h, auth_params(code_challenge=challenge, scope=scope, nonce=nonce),
                       totp_secret=totp_secret)
    params = redirect_params(response)
    token = exchange(h, params["code"], verifier)
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


def through_consent(client: TestClient[Any], response: httpx.Response) -> httpx.Response:
    """Press Allow when ``response`` is the consent page (a client that is not first
    party); any other response as it is."""
    if page_step(response) == "consent":
        return submit(client, response, action="allow")
    return response


def page_step(response: httpx.Response) -> str | None:
    """Which of our pages ``response`` is: ``password``, ``totp`` or ``consent`` (the
    ``step`` of its form), or None for anything else (a redirect, an error page)."""
    if response.status_code not in (200, 400, 409, 429):
        return None
    if not response.headers.get("content-type", "").startswith("text/html"):
        return None
    step = Form(response.text).fields.get("step")
    return step if step in ("password", "totp", "consent") else None


@dataclass
class Visit:
    """What :func:`visit` saw: the pages shown on the way, in order, and the last answer."""

    response: httpx.Response
    pages: list[str] = field(default_factory=list)

    @property
    def password_form_shown(self) -> bool:
        return "password" in self.pages

    @property
    def params(self) -> dict[str, str]:
        """The final redirect's query (asserting there was one)."""
        return redirect_params(self.response)


def visit(
    h: Harness,
    params: dict[str, str],
    *,
    username: str = "alice",
    password: str | None = PASSWORD,
    totp_secret: str | None = None,
    consent: str | None = "allow",
) -> Visit:
    """Follow an authorization request through every page, like a browser: type
    ``username`` and ``password`` on the sign-in page, a fresh code of ``totp_secret`` on
    the TOTP page (the clock moves on a TOTP step first, so codes are never replays), and
    press ``consent`` (``allow``, ``deny``, ``switch_user``) on the consent page. Stops at a
    page it has nothing for (``password``/``totp_secret``/``consent`` None), or at anything
    that is not one of the pages."""
    response = h.client.get("/oauth/authorize", params=params, follow_redirects=False)
    pages: list[str] = []
    for _ in range(8):
        step = page_step(response)
        if step is None:
            break
        pages.append(step)
        if step == "password" and password is not None:
            response = submit(h.client, response, username=username, password=password)
        elif step == "totp" and totp_secret is not None:
            h.clock.advance(30)
            response = submit(h.client, response,
                              code=pyotp.TOTP(totp_secret).at(h.clock.now()))
        elif step == "consent" and consent is not None:
            index = 1 if consent == "switch_user" else 0
            response = submit_form(h.client, response, index, action=consent)
        else:
            break
    return Visit(response, pages)


def submit_form(
    client: TestClient[Any], page: httpx.Response, index: int, **values: str
) -> httpx.Response:
    """Submit the ``index``-th form (from 0) of the page with ``values``."""
    form = Form(page.text, index)
    assert form.method == "post" and form.action, page.text
    return client.post(form.action, data={**form.fields, **values}, follow_redirects=False)
