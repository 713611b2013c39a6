"""Settings, read once from the environment and validated before anything listens.

Every problem is a :class:`ConfigError` naming the variable; the CLI prints it as one line
and exits with status 2.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import msgspec

from domain.client_metadata import MIN_CLIENT_SECRET_LENGTH
from domain.password_policy import DEFAULT_MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH
from domain.resources import resource_uri_problem
from ports.store_settings import StoreSettings

#: The entry-point group store backends register in; ``STORE_BACKEND`` picks one by name.
#: The built-in ``hybrid`` and ``sql`` are declared in this project's pyproject.toml, and
#: any installed package can add one (docs/writing-an-adapter.md).
STORE_ENTRY_POINT_GROUP = "auth_service.stores"

DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access", "read", "write", "mfa")
_DATABASE_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")


class ConfigError(Exception):
    """A setting is missing or malformed. ``str()`` is the one line shown to the operator."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def installed_store_backends() -> dict[str, list[EntryPoint]]:
    """Every installed backend: its name and the entry points declaring it (one, unless two
    packages claim the same name). Nothing is imported."""
    backends: dict[str, list[EntryPoint]] = {}
    for entry_point in entry_points(group=STORE_ENTRY_POINT_GROUP):
        backends.setdefault(entry_point.name, []).append(entry_point)
    return backends


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    #: An installed ``auth_service.stores`` entry point's name.
    store_backend: str = "hybrid"
    #: ``STORE_URL``: the backend's connection string (see :attr:`store`).
    store_url: str | None = None
    database_url: str | None = None
    database_pool_size: int = 10
    database_connect_timeout_seconds: int = 30
    redis_url: str | None = None
    #: True: REDIS_URL is a Redis Cluster; False: a single Redis; None: ask it on connect.
    redis_cluster: bool | None = None
    bind_host: str = "127.0.0.1"
    bind_port: int = 8080
    external_base_url: str = "http://localhost:8080"
    token_expiry_seconds: int = 3600
    refresh_token_expiry_seconds: int = 1_209_600
    #: Absolute lifetime of a user's grant from the sign-in; rotation never extends it.
    refresh_token_max_lifetime_seconds: int = 7_776_000
    auth_code_expiry_seconds: int = 600
    #: ``(client_id, sha256 hex of the secret)``: secrets are not kept in clear after loading.
    client_credentials: tuple[tuple[str, str], ...] = ()
    client_redirect_uris: Mapping[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    allowed_scopes: tuple[str, ...] = DEFAULT_SCOPES
    clients_file: str | None = None
    signing_key_files: tuple[str, ...] = ()
    #: Keys sealing TOTP seeds at rest, current first; empty: derived from the signing keys.
    sealing_key_files: tuple[str, ...] = ()
    purge_interval_seconds: int = 300
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    #: Requests per minute; 0 switches a limit off (docs/operations.md, "Rate limits").
    rate_limit_token_per_minute: int = 0
    rate_limit_token_ip_per_minute: int = 0
    rate_limit_signin_per_minute: int = 60
    #: How recent a sign-in must be for a token to enrol or replace a TOTP factor.
    mfa_recent_auth_seconds: int = 600
    #: Failed sign-ins per client address (any user name) per 15 minutes; 0 switches it off.
    rate_limit_signin_failures_per_address: int = 20
    #: Failed client authentications per (client id, address) per 15 minutes; 0: off.
    rate_limit_client_auth_failures: int = 20
    #: Peers whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed (addresses,
    #: networks, or ``*``); empty: none, every request is from its TCP peer.
    trusted_proxies: tuple[str, ...] = ()
    #: Shortest password SCIM and ``user set-password`` accept (the longest is 1024).
    password_min_length: int = DEFAULT_MIN_PASSWORD_LENGTH
    #: ``OUTBOUND_ALLOW_LOOPBACK``: whether URLs the server calls (a client's ``jwks_uri``,
    #: ``backchannel_logout_uri``) may be http loopback URLs; otherwise https only.
    outbound_allow_loopback: bool = False
    #: ``CLIENT_REGISTRATION``: dynamic registration ``off``, ``open`` to anyone, or with an
    #: initial access ``token``.
    client_registration: Literal["off", "open", "token"] = "off"
    #: ``RATE_LIMIT_REGISTRATION_PER_MINUTE``: registration requests per client address per
    #: minute (``POST /oauth/register``); 0 switches it off.
    rate_limit_registration_per_minute: int = 10
    #: ``SESSION_IDLE_SECONDS``: a browser session ends after this long without an
    #: authorization; ``SESSION_MAX_SECONDS``: and at the latest this long after its sign-in.
    session_idle_seconds: int = 8 * 3600
    session_max_seconds: int = 7 * 86400
    #: ``DPOP_REQUIRE_NONCE``: whether every DPoP proof must carry a server nonce
    #: (``DPoP-Nonce``, RFC 9449 section 8).
    dpop_require_nonce: bool = True
    #: ``DEFAULT_RESOURCE``: the audience of a token whose request names no ``resource``
    #: (RFC 8707): the ``resource_uri`` of a resource server; None: no audience.
    default_resource: str | None = None
    #: ``DEVICE_CODE_SECONDS``: how long a device authorization (RFC 8628) waits for the
    #: user; ``RATE_LIMIT_DEVICE_AUTHORIZATION_PER_MINUTE``: device authorization requests per
    #: client address per minute; ``RATE_LIMIT_DEVICE_CODE_FAILURES_PER_ADDRESS`` and
    #: ``RATE_LIMIT_DEVICE_CODE_FAILURES``: wrong user codes per 15 minutes, per address and
    #: in all (0 switches a limit off; docs/oauth.md, "Device flow").
    device_code_seconds: int = 600
    rate_limit_device_authorization_per_minute: int = 20
    rate_limit_device_code_failures_per_address: int = 10
    rate_limit_device_code_failures: int = 1000
    #: ``SMTP_URL``: the mail server (``smtp://[user:password@]host[:port]`` with STARTTLS
    #: when the server offers it, or ``smtps://`` for TLS from the start); None: no mail,
    #: and no password reset or email verification. ``SMTP_FROM``: the sender address,
    #: required with ``SMTP_URL``.
    smtp_url: str | None = None
    smtp_from: str | None = None
    #: ``PASSWORD_RESET_SECONDS``: how long a mailed password-reset link works;
    #: ``EMAIL_VERIFICATION_SECONDS``: how long an email verification link works.
    password_reset_seconds: int = 1800
    email_verification_seconds: int = 86400
    #: ``EMAIL_VERIFICATION_ON_PROVISION``: whether SCIM writes (a provisioning client)
    #: mail a verification link for each new or changed email; off, users ask for one on
    #: ``/account``.
    email_verification_on_provision: bool = True

    @property
    def issuer(self) -> str:
        return self.external_base_url

    @property
    def store(self) -> StoreSettings:
        """What the chosen backend's ``open_store`` receives.

        ``url`` is ``STORE_URL``, or ``DATABASE_URL`` when ``STORE_URL`` is not set.
        """
        if self.store_url is not None:
            url, variable = self.store_url, "STORE_URL"
        elif self.database_url is not None:
            url, variable = self.database_url, "DATABASE_URL"
        else:
            url, variable = None, "STORE_URL"
        return StoreSettings(
            backend=self.store_backend,
            url=url,
            url_variable=variable,
            pool_size=self.database_pool_size,
            connect_timeout_seconds=self.database_connect_timeout_seconds,
            redis_url=self.redis_url,
            redis_cluster=self.redis_cluster,
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raises :class:`ConfigError` on the first problem."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name)
        return value.strip() if value is not None and value.strip() else None

    backend = (get("STORE_BACKEND") or "hybrid").lower()
    installed = installed_store_backends()
    if backend not in installed:
        raise ConfigError(
            "STORE_BACKEND",
            f"must be one of the installed backends {', '.join(sorted(installed)) or '(none)'}"
            f" (got {backend!r})",
        )
    if len(installed[backend]) > 1:
        packages = sorted({package_of(ep) for ep in installed[backend]})
        raise ConfigError(
            "STORE_BACKEND",
            f"{backend!r} is declared by more than one installed package ({', '.join(packages)});"
            " uninstall all but one",
        )
    database_url = get("DATABASE_URL")
    if database_url is not None:
        _check_database_url(database_url)
    redis_url = get("REDIS_URL")
    if redis_url is not None and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")
    redis_cluster = _redis_cluster(get("REDIS_CLUSTER"), redis_url)
    host, port = _bind_addr(get("BIND_ADDR") or "127.0.0.1:8080")
    base_url = (get("EXTERNAL_BASE_URL") or "http://localhost:8080").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError("EXTERNAL_BASE_URL", "must be an absolute http(s) URL without query")
    scopes = _scopes(get("ALLOWED_SCOPES"))
    clients_file = get("CLIENTS_FILE")
    if clients_file is not None and not os.path.isfile(clients_file):
        raise ConfigError("CLIENTS_FILE", f"no such file: {clients_file}")
    key_files = tuple(p.strip() for p in (get("SIGNING_KEY_FILE") or "").split(",") if p.strip())
    for path in key_files:
        if not os.path.isfile(path):
            raise ConfigError("SIGNING_KEY_FILE", f"no such file: {path}")
    sealing_files = tuple(
        p.strip() for p in (get("SEALING_KEY_FILE") or "").split(",") if p.strip()
    )
    for path in sealing_files:
        if not os.path.isfile(path):
            raise ConfigError("SEALING_KEY_FILE", f"no such file: {path}")
    log_format = (get("LOG_FORMAT") or "auto").lower()
    if log_format not in ("auto", "json", "console"):
        raise ConfigError("LOG_FORMAT", "must be auto, json or console")
    return Settings(
        store_backend=backend,
        store_url=get("STORE_URL"),
        database_url=database_url,
        database_pool_size=_positive_int(env, "DATABASE_POOL_SIZE", 10),
        database_connect_timeout_seconds=_positive_int(env, "DATABASE_CONNECT_TIMEOUT_SECONDS", 30),
        redis_url=redis_url,
        redis_cluster=redis_cluster,
        bind_host=host,
        bind_port=port,
        external_base_url=base_url,
        token_expiry_seconds=_positive_int(env, "TOKEN_EXPIRY_SECONDS", 3600),
        refresh_token_expiry_seconds=_positive_int(env, "REFRESH_TOKEN_EXPIRY_SECONDS", 1_209_600),
        refresh_token_max_lifetime_seconds=_positive_int(
            env, "REFRESH_TOKEN_MAX_LIFETIME_SECONDS", 7_776_000),
        auth_code_expiry_seconds=_positive_int(env, "AUTH_CODE_EXPIRY_SECONDS", 600),
        client_credentials=_client_credentials(get("CLIENT_CREDENTIALS")),
        client_redirect_uris=_redirect_uris(get("CLIENT_REDIRECT_URIS")),
        allowed_scopes=scopes,
        clients_file=clients_file,
        signing_key_files=key_files,
        sealing_key_files=sealing_files,
        purge_interval_seconds=_positive_int(env, "PURGE_INTERVAL_SECONDS", 300),
        log_level=(get("LOG_LEVEL") or "INFO").upper(),
        log_format=cast(Literal["auto", "json", "console"], log_format),
        rate_limit_token_per_minute=_non_negative_int(env, "RATE_LIMIT_TOKEN_PER_MINUTE", 0),
        rate_limit_token_ip_per_minute=_non_negative_int(env, "RATE_LIMIT_TOKEN_IP_PER_MINUTE", 0),
        rate_limit_signin_per_minute=_non_negative_int(env, "RATE_LIMIT_SIGNIN_PER_MINUTE", 60),
        mfa_recent_auth_seconds=_positive_int(env, "MFA_RECENT_AUTH_SECONDS", 600),
        rate_limit_signin_failures_per_address=_non_negative_int(
            env, "RATE_LIMIT_SIGNIN_FAILURES_PER_ADDRESS", 20),
        rate_limit_client_auth_failures=_non_negative_int(
            env, "RATE_LIMIT_CLIENT_AUTH_FAILURES", 20),
        trusted_proxies=_trusted_proxies(get("TRUSTED_PROXIES")),
        password_min_length=_password_min_length(env),
        outbound_allow_loopback=_flag(env, "OUTBOUND_ALLOW_LOOPBACK"),
        client_registration=_choice(env, "CLIENT_REGISTRATION", ("off", "open", "token")),
        rate_limit_registration_per_minute=_non_negative_int(
            env, "RATE_LIMIT_REGISTRATION_PER_MINUTE", 10),
        session_idle_seconds=_positive_int(env, "SESSION_IDLE_SECONDS", 8 * 3600),
        session_max_seconds=_positive_int(env, "SESSION_MAX_SECONDS", 7 * 86400),
        dpop_require_nonce=_flag(env, "DPOP_REQUIRE_NONCE", default=True),
        default_resource=_default_resource(get("DEFAULT_RESOURCE")),
        device_code_seconds=_device_code_seconds(env),
        rate_limit_device_authorization_per_minute=_non_negative_int(
            env, "RATE_LIMIT_DEVICE_AUTHORIZATION_PER_MINUTE", 20),
        rate_limit_device_code_failures_per_address=_non_negative_int(
            env, "RATE_LIMIT_DEVICE_CODE_FAILURES_PER_ADDRESS", 10),
        rate_limit_device_code_failures=_non_negative_int(
            env, "RATE_LIMIT_DEVICE_CODE_FAILURES", 1000),
        smtp_url=_smtp_url(get("SMTP_URL")),
        smtp_from=_smtp_from(get("SMTP_URL"), get("SMTP_FROM")),
        password_reset_seconds=_positive_int(env, "PASSWORD_RESET_SECONDS", 1800),
        email_verification_seconds=_positive_int(env, "EMAIL_VERIFICATION_SECONDS", 86400),
        email_verification_on_provision=_flag(env, "EMAIL_VERIFICATION_ON_PROVISION",
                                              default=True),
    )


def _smtp_url(value: str | None) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("SMTP_URL", "must be smtp://host[:port] or smtps://host[:port]")
    try:
        parts.port  # noqa: B018 (a port out of range raises here)
    except ValueError as exc:
        raise ConfigError("SMTP_URL", "has an invalid port") from exc
    return value


def _smtp_from(url: str | None, value: str | None) -> str | None:
    if not url:
        return value or None
    if not value or "@" not in value or any(c in value for c in "\r\n"):
        raise ConfigError("SMTP_FROM", "must be the sender's email address when SMTP_URL is set")
    return value


def _default_resource(value: str | None) -> str | None:
    # Whether a client has it is checked with the clients (entrypoints.clients).
    problem = resource_uri_problem(value) if value is not None else None
    if problem is not None:
        raise ConfigError("DEFAULT_RESOURCE", problem)
    return value


#: A device code lives at most this long: every live user code is a target for guessing.
MAX_DEVICE_CODE_SECONDS = 3600


def _device_code_seconds(env: Mapping[str, str]) -> int:
    seconds = _positive_int(env, "DEVICE_CODE_SECONDS", 600)
    if seconds < 60 or seconds > MAX_DEVICE_CODE_SECONDS:
        raise ConfigError("DEVICE_CODE_SECONDS",
                          f"must be 60 to {MAX_DEVICE_CODE_SECONDS} seconds (got {seconds})")
    return seconds


def _flag(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(name, "must be 1 or 0 (true or false)")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> Any:
    value = (env.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}")
    return value


def package_of(entry_point: EntryPoint) -> str:
    """The name of the distribution that declares ``entry_point`` (its module if unknown)."""
    dist = entry_point.dist
    return dist.name if dist is not None else entry_point.module.split(".")[0]


def _redis_cluster(value: str | None, redis_url: str | None) -> bool | None:
    if value is None:
        return None
    flag = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    cluster = flag.get(value.lower())
    if cluster is None:
        raise ConfigError("REDIS_CLUSTER", "must be 1 or 0 (true or false); unset to detect")
    if cluster and redis_url is not None and urlsplit(redis_url).scheme == "unix":
        raise ConfigError("REDIS_CLUSTER", "a Redis Cluster is reached over redis:// or rediss://")
    return cluster


def _check_database_url(url: str) -> None:
    parts = urlsplit(url)
    has_host = bool(parts.hostname) or "host=" in parts.query
    if parts.scheme not in _DATABASE_SCHEMES or not has_host:
        raise ConfigError(
            "DATABASE_URL",
            "must look like postgresql://user:password@host:5432/dbname "
            "(postgres://, postgresql:// or postgresql+asyncpg://)",
        )


def _bind_addr(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError("BIND_ADDR", f"must be host:port, e.g. 127.0.0.1:8080 (got {value!r})")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not all(label.isalnum() or "-" in label for label in host.split(".")):
                raise ConfigError("BIND_ADDR", f"{host!r} is not a host name or address") from None
    return host, int(port_text)


def _trusted_proxies(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    entries = tuple(e.strip() for e in value.split(",") if e.strip())
    if entries == ("*",):
        return entries
    for entry in entries:
        try:
            # strict: "10.0.0.1/8" is a typo for a network, not a network to guess at.
            ipaddress.ip_network(entry, strict=True)
        except ValueError:
            raise ConfigError(
                "TRUSTED_PROXIES",
                f"{entry!r} is not an IP address or network; use e.g. 10.0.0.0/8,192.0.2.7 "
                "or * alone") from None
    return entries


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigError(name, f"must be a whole number, 0 to switch off (got {raw!r})")
    return int(raw)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(name, f"must be a positive integer (got {raw!r})")
    return int(raw)


def _password_min_length(env: Mapping[str, str]) -> int:
    length = _positive_int(env, "PASSWORD_MIN_LENGTH", DEFAULT_MIN_PASSWORD_LENGTH)
    if length > MAX_PASSWORD_LENGTH:
        raise ConfigError("PASSWORD_MIN_LENGTH",
                          f"must be at most {MAX_PASSWORD_LENGTH}, the longest password accepted")
    return length


def _scopes(value: str | None) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_SCOPES
    scopes = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [s for s in scopes if not _is_scope_token(s)]
    if bad or not scopes:
        raise ConfigError("ALLOWED_SCOPES", "must be a comma-separated list of scope names")
    return scopes


def _is_scope_token(scope: str) -> bool:
    # RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    return all(c == "\x21" or "\x23" <= c <= "\x5b" or "\x5d" <= c <= "\x7e" for c in scope)


def _client_credentials(value: str | None) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    clients: list[tuple[str, str]] = []
    for index, entry in enumerate((e.strip() for e in value.split(";")), start=1):
        if not entry:
            continue
        client_id, sep, secret = entry.partition(":")
        if not sep or not client_id.strip() or not secret:
            raise ConfigError(
                "CLIENT_CREDENTIALS",
                f"entry {index} must be client_id:secret (id:secret;id2:secret2)",
            )
        client_id = client_id.strip()
        if len(secret) < MIN_CLIENT_SECRET_LENGTH:
            raise ConfigError(
                "CLIENT_CREDENTIALS",
                f"client {client_id!r} has a secret shorter than "
                f"{MIN_CLIENT_SECRET_LENGTH} characters",
            )
        if any(existing == client_id for existing, _ in clients):
            raise ConfigError("CLIENT_CREDENTIALS", f"client {client_id!r} is listed twice")
        clients.append((client_id, hashlib.sha256(secret.encode("utf-8")).hexdigest()))
    return tuple(clients)


def _redirect_uris(value: str | None) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    result: dict[str, tuple[str, ...]] = {}
    for index, entry in enumerate((e.strip() for e in value.split(";")), start=1):
        if not entry:
            continue
        client_id, sep, uris_text = entry.partition(":")
        uris = tuple(u.strip() for u in uris_text.split(",") if u.strip())
        if not sep or not client_id.strip() or not uris:
            raise ConfigError(
                "CLIENT_REDIRECT_URIS", f"entry {index} must be client_id:uri1,uri2"
            )
        for uri in uris:
            parts = urlsplit(uri)
            web_without_host = parts.scheme in ("http", "https") and not parts.netloc
            if not parts.scheme or web_without_host or parts.fragment:
                raise ConfigError(
                    "CLIENT_REDIRECT_URIS", f"{uri!r} is not an absolute URI without fragment"
                )
        result[client_id.strip()] = uris
    return result
