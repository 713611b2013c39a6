"""Benchmark auth-service against the framework's ceiling, on this machine, in one run.

Usage: ``.venv/bin/python bench/run.py [--duration 10] [--sections main,scale,...]``
(``make bench``). See bench/README.md for what each section measures and how to read it.

The server under test runs on core 0 (``taskset -c 0``), one worker; wrk (2 threads,
32 connections), Redis and PostgreSQL run on core 1. Results go to stdout and to
``bench/results/latest.md`` (and ``latest.json``) as Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import msgspec

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scim_bulk
from bench.servers import (
    ROOT,
    VENV_BIN,
    HttpServer,
    Processes,
    new_database,
    serve_app,
    serve_service,
    sql_execute,
)
from bench.wrkresult import WrkResult, parse_wrk_output
from domain.client_assertion import ASSERTION_TYPE
from domain.oauth import pkce_s256

SERVER_CPUS = "0"
LOAD_CPUS = "1"
BOTH_CPUS = "0,1"
WRK_SCRIPT = ROOT / "bench" / "wrk" / "request.lua"
RESULTS_DIR = ROOT / "bench" / "results"

CLIENT_ID = "bench"
CLIENT_SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
#: The first-party public client of the SSO hot path (section ``sso``).
SSO_CLIENT_ID = "bench-sso"
SSO_REDIRECT = "http://127.0.0.1:9/cb"
SSO_PASSWORD = "bench-password-0123456789"
CLIENTS_TOML = f"""
[[clients]]
client_id = "{CLIENT_ID}"
name = "benchmark client"
secret = "{CLIENT_SECRET}"
grant_types = ["client_credentials"]
scopes = ["read", "write", "scim:read", "scim:write"]
token_endpoint_auth_method = "client_secret_basic"

[[clients]]
client_id = "{SSO_CLIENT_ID}"
name = "benchmark SSO app"
public = true
first_party = true
redirect_uris = ["{SSO_REDIRECT}"]
scopes = ["openid", "profile"]
"""
ISSUER = "http://localhost:8080"
#: The private_key_jwt client: its key signs the single-use assertions wrk sends.
JWT_CLIENT_ID = "bench-jwt"
#: Section ``signing``: confidential clients redeeming seeded codes (no PKCE), one per ID-token
#: algorithm, and one whose codes have no ``openid`` (opaque tokens only, no ID token).
CODE_CLIENTS = {"bench-code-opaque": None, "bench-code-rs256": "RS256",
                "bench-code-es256": "ES256", "bench-code-eddsa": "EdDSA"}
CODE_REDIRECT = "https://bench.example/cb"
#: The slowest figure of section ``signing`` must reach this ratio to the ceiling (issue 15).
SIGNING_TARGET = 0.40
#: A resource server whose tokens are JWTs (RFC 9068): issuance for it signs each token.
JWT_RESOURCE = "https://api.bench.example"
#: The token the ceiling routes receive: same length as a real one.
CEILING_TOKEN = "tk_bench0000000000"

#: (backend, scenario) -> minimum ratio to the ceiling (issue 6).
TARGETS: dict[tuple[str, str], float] = {
    ("hybrid", "introspection"): 0.80,
    ("hybrid", "issuance"): 0.65,
    ("hybrid+redis", "introspection"): 0.90,
    ("sql", "introspection"): 0.80,
}
P99_TARGET_US = 10_000
CEILING_OF = {"hybrid": "bare", "hybrid+redis": "+1 Redis GET", "sql": "+1 SELECT"}
CEILING_PATHS = {"bare": "/bare", "+1 Redis GET": "/redis", "+1 SELECT": "/sql"}


class Row(msgspec.Struct, kw_only=True):
    """One measured figure."""

    section: str
    backend: str
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_mb: float
    errors: int
    ceiling: str = ""
    ratio: float | None = None
    cpu_us: float = 0.0
    cpu_ratio: float | None = None
    target: str = ""
    note: str = ""


class Measured(msgspec.Struct, frozen=True):
    result: WrkResult
    cpu_us_per_request: float


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs = Processes()
        self.rows: list[Row] = []
        self.ceilings: dict[str, float] = {}
        self.ceiling_cpu: dict[str, float] = {}
        self.notes: list[str] = []
        from joserfc.jwk import RSAKey

        self.jwt_key = RSAKey.generate_key(2048, private=True, parameters={"kid": "bench-1"})
        jwks = msgspec.json.encode({"keys": [self.jwt_key.as_dict(private=False)]}).decode()
        (self.procs.tmp / "clients.toml").write_text(
            CLIENTS_TOML + f"""
[[clients]]
client_id = "{JWT_CLIENT_ID}"
grant_types = ["client_credentials"]
scopes = ["read"]
token_endpoint_auth_method = "private_key_jwt"
jwks = {_toml_inline(jwks)}

[[clients]]
client_id = "bench-api"
secret = "{CLIENT_SECRET}"
grant_types = ["client_credentials"]
scopes = ["read"]
resource_uri = "{JWT_RESOURCE}"
resource_scopes = ["read"]
access_token_format = "jwt"
""")
        for client_id, alg in CODE_CLIENTS.items():
            with (self.procs.tmp / "clients.toml").open("a") as clients:
                clients.write(f"""
[[clients]]
client_id = "{client_id}"
secret = "{CLIENT_SECRET}"
grant_types = ["authorization_code"]
redirect_uris = ["{CODE_REDIRECT}"]
scopes = ["openid", "read"]
require_pkce = false
# The operator's own apps: no consent to record before their seeded codes are redeemed.
first_party = true
""" + (f'id_token_signed_response_alg = "{alg}"\n' if alg else ""))
        from adapters.jose_signer import generate_pem_key

        # One key of each type, RSA first (the primary key, as in most deployments).
        self.signing_key_files = []
        for alg in ("RS256", "ES256", "EdDSA"):
            path = self.procs.tmp / f"signing-{alg}.pem"
            path.write_bytes(generate_pem_key(alg))
            self.signing_key_files.append(str(path))
        self.redis_url = ""
        self.pg_url = ""
        #: Lines of a BENCH_BODIES file that earlier wrk runs sent.
        self.bodies_used: dict[str, int] = {}
        self.ceiling_db: str | None = None

    # wrk

    def wrk(
        self, url: str, *, method: str = "POST", body: str = "", auth: str = "",
        pool: int = 0, duration: float | None = None, background: bool = False,
        bodies: str = "", body_header: str = "", cookie: str = "",
    ) -> WrkResult | subprocess.Popen[str]:
        seconds = duration if duration is not None else self.args.duration
        env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": body, "BENCH_AUTH": auth,
               "BENCH_COOKIE": cookie,
               "BENCH_POOL": str(pool), "BENCH_BODIES": bodies,
               "BENCH_BODIES_HEADER": body_header,
               "BENCH_THREADS": str(self.args.threads),
               "BENCH_BODIES_SKIP": str(self.bodies_used.get(bodies, 0))}
        argv = ["taskset", "-c", LOAD_CPUS, "wrk", f"-t{self.args.threads}",
                f"-c{self.args.connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
                "-s", str(WRK_SCRIPT), url]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        if background:
            return proc
        out, _ = proc.communicate()
        result = parse_wrk_output(out)
        if bodies:
            # Single-use bodies: the next run starts after every line this one may have
            # reached. Each thread takes every n-th line, and one thread may have sent all the
            # requests (plus one in flight per connection when wrk stopped).
            self.bodies_used[bodies] = self.bodies_used.get(bodies, 0) + self.args.threads * (
                result.requests + self.args.connections)
        return result

    def measure(
        self, server: HttpServer, path: str, *, duration: float | None = None, **kw: object,
    ) -> Measured:
        """Warm up, then keep the best of ``--repeat`` runs (this machine may be shared).

        Also the server's CPU time per request over the kept run: unlike req/s, it hardly
        moves when other processes compete for the cores.
        """
        url = server.base + path
        if self.args.warmup > 0:
            self.wrk(url, duration=self.args.warmup, **kw)  # type: ignore[arg-type]
        best: Measured | None = None
        for _ in range(self.args.repeat):
            cpu_before = server.cpu_seconds()
            result = self.wrk(url, duration=duration, **kw)  # type: ignore[arg-type]
            cpu = server.cpu_seconds() - cpu_before
            assert isinstance(result, WrkResult)
            measured = Measured(result, cpu * 1e6 / max(result.requests, 1))
            if best is None or result.rps > best.result.rps:
                best = measured
        assert best is not None
        return best

    def record(
        self, section: str, backend: str, scenario: str, measured: Measured, server: HttpServer,
        *, ceiling: str = "", note: str = "",
    ) -> Row:
        result = measured.result
        ratio = result.rps / self.ceilings[ceiling] if ceiling in self.ceilings else None
        cpu_ratio = None
        if ceiling in self.ceiling_cpu and measured.cpu_us_per_request:
            cpu_ratio = self.ceiling_cpu[ceiling] / measured.cpu_us_per_request
        target = ""
        goal = TARGETS.get((backend, scenario)) if section == "main" else None
        if section == "signing":
            goal = SIGNING_TARGET
        if goal is not None and ratio is not None:
            target = f"≥ {goal:.2f} {'ok' if ratio >= goal else 'MISSED'}"
        # The p99 goal is per request; a Bulk row's latencies are those of 1,000 creates.
        if section == "main" and backend.startswith("hybrid") and "Bulk" not in scenario:
            p99_ok = result.p99_us < P99_TARGET_US
            target += ("; " if target else "") + f"p99 < 10 ms {'ok' if p99_ok else 'MISSED'}"
        row = Row(
            section=section, backend=backend, scenario=scenario, rps=round(result.rps, 1),
            p50_ms=result.p50_us / 1000, p99_ms=result.p99_us / 1000,
            max_ms=result.max_us / 1000, rss_mb=round(server.rss_bytes() / 2**20, 1),
            errors=result.errors, ceiling=ceiling,
            ratio=round(ratio, 3) if ratio is not None else None, target=target, note=note,
            cpu_us=round(measured.cpu_us_per_request, 1),
            cpu_ratio=round(cpu_ratio, 3) if cpu_ratio is not None else None,
        )
        self.rows.append(row)
        print(f"  {backend:13} {scenario:32} {row.rps:9.0f} req/s  p50 {row.p50_ms:6.2f} ms  "
              f"p99 {row.p99_ms:6.2f} ms  rss {row.rss_mb:6.1f} MB"
              + f"  cpu {row.cpu_us:5.0f} us/req"
              + (f"  ratio {row.ratio:.2f}" if row.ratio is not None else "")
              + (f" (cpu {row.cpu_ratio:.2f})" if row.cpu_ratio is not None else "")
              + (f"  ERRORS {row.errors}" if row.errors else ""), flush=True)
        return row

    # Servers

    def service_env(self, backend: str, database_url: str = "") -> dict[str, str]:
        env = {
            "STORE_BACKEND": "sql" if backend == "sql" else "hybrid",
            "CLIENTS_FILE": str(self.procs.tmp / "clients.toml"),
            "EXTERNAL_BASE_URL": ISSUER,
            "SIGNING_KEY_FILE": ",".join(self.signing_key_files),
        }
        for name in ("REDIS_URL", "DATABASE_URL", "CLIENT_CREDENTIALS"):
            os.environ.pop(name, None)
        if backend == "hybrid+redis":
            env["REDIS_URL"] = self.redis_url
        if backend == "sql":
            env["DATABASE_URL"] = database_url
            # One connection per concurrent request: with a smaller pool, requests queue for
            # a connection and the figure measures the queue, not the store.
            # docs/sql-backend.md, "Sizing the pool".
            env["DATABASE_POOL_SIZE"] = str(self.args.connections)
        return env

    @contextmanager
    def service(
        self, name: str, env: Mapping[str, str], *, workers: int = 1, seeded: bool = False,
        cpus: str = SERVER_CPUS, ready_timeout: float = 120,
    ) -> Iterator[HttpServer]:
        if seeded:
            server = serve_app(self.procs, name, "bench.seeded_app:create_seeded_app", cpus, env)
        else:
            server = serve_service(self.procs, name, cpus, env, workers)
        try:
            server.wait_ready("/health", ready_timeout)
            yield server
        finally:
            server.stop()

    def redis_flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        client.flushall()
        client.close()

    # Sections

    def run_ceilings(self, names: tuple[str, ...] = ("bare", "+1 Redis GET", "+1 SELECT")) -> None:
        """Measure these ceiling routes now (the ceiling app is started for them)."""
        print("ceiling: " + ", ".join(names), flush=True)
        if self.ceiling_db is None:
            self.ceiling_db = new_database(self.pg_url, "bench_ceiling")
            asyncio.run(sql_execute(self.ceiling_db, _seed_sql(int(time.time()), 0, 1, live=True)))
        env = {"CEILING_REDIS_URL": self.redis_url, "CEILING_DATABASE_URL": self.ceiling_db,
               "CEILING_POOL_SIZE": str(self.args.connections)}
        server = serve_app(self.procs, "ceiling", "bench.ceiling:create_ceiling_app",
                           SERVER_CPUS, env)
        try:
            server.wait_ready("/bare", 60, method="POST", data={"token": "x"})
            for name in names:
                measured = self.measure(server, CEILING_PATHS[name], body=f"token={CEILING_TOKEN}")
                self.ceilings[name] = measured.result.rps
                self.ceiling_cpu[name] = measured.cpu_us_per_request
                self.record("main", "ceiling", name, measured, server, ceiling=name)
        finally:
            server.stop()

    def run_backend(self, backend: str) -> None:
        print(backend, flush=True)
        db = new_database(self.pg_url, "bench_main") if backend == "sql" else ""
        if backend == "hybrid+redis":
            self.redis_flush()
        ceiling = CEILING_OF[backend]
        with self.service(f"service-{backend}", self.service_env(backend, db)) as server:
            token = _access_token(server, "read")
            basic = self.measure(server, "/oauth/token", auth=BASIC,
                                 body="grant_type=client_credentials&scope=read")
            self.record("main", backend, "issuance", basic, server, ceiling=ceiling,
                        note="client_credentials, client_secret_basic")
            result = self.measure(server, "/oauth/token", auth=BASIC,
                                  body="grant_type=client_credentials&scope=read&resource="
                                  + quote(JWT_RESOURCE, safe=""))
            self.record("main", backend, "issuance, JWT access token (RS256)", result, server,
                        ceiling=ceiling, note="client_credentials, at+jwt signed per request")
            # Each assertion is single-use: enough for the warm-up and the run at the rate
            # client_secret_basic just reached (a key-based one cannot be faster).
            wanted = self.args.threads * (
                int(basic.result.rps * (self.args.warmup + self.args.duration)
                    * self.args.repeat * 1.2) + 100 * (1 + self.args.repeat))
            bodies = self.assertions(wanted)
            result = self.measure(server, "/oauth/token", bodies=str(bodies))
            self.record("main", backend, "issuance, private_key_jwt", result, server,
                        ceiling=ceiling,
                        note=f"client_credentials, RS256 assertion (jwks), {wanted:,} signed")
            result = self.measure(server, "/oauth/introspect", auth=BASIC,
                                  body=f"token={token}")
            self.record("main", backend, "introspection", result, server, ceiling=ceiling,
                        note="an active token")
            self.run_scim(backend, server, ceiling)
            self.run_scim_bulk(backend, server, ceiling)

    def run_signing(self) -> None:
        """ID tokens signed RS256, ES256 and EdDSA beside the same code exchange without an
        ID token, and DPoP-bound client_credentials issuance beside bearer issuance: hybrid,
        as ratios to the bare ceiling (target: the slowest >= 0.40)."""
        print("signing: ID-token algorithms, DPoP", flush=True)
        # Enough single-use codes for every run at 6,000 exchanges/s, whichever thread
        # sends them (each thread takes every n-th line).
        per_run = int(6000 * (self.args.warmup + self.args.duration * self.args.repeat) * 1.2)
        codes = per_run * self.args.threads
        clients = ";".join(f"{c}={'openid read' if alg else 'read'}"
                           for c, alg in CODE_CLIENTS.items())
        env = {**self.service_env("hybrid"), "BENCH_SEED_CODES": str(codes),
               "BENCH_SEED_CODE_CLIENTS": clients}
        with self.service("signing-hybrid", env, seeded=True, ready_timeout=900) as server:
            for client_id, alg in CODE_CLIENTS.items():
                path = self.procs.tmp / f"codes-{client_id}.txt"
                with path.open("w") as out:
                    for index in range(codes):
                        out.write(f"grant_type=authorization_code&code=ac_bench-{client_id}-"
                                  f"{index:010d}&redirect_uri={quote(CODE_REDIRECT, safe='')}\n")
                auth = "Basic " + base64.b64encode(
                    f"{client_id}:{CLIENT_SECRET}".encode()).decode()
                result = self.measure(server, "/oauth/token", auth=auth, bodies=str(path))
                scenario = f"code exchange, ID token {alg}" if alg else "code exchange, opaque"
                self.record("signing", "hybrid", scenario, result, server, ceiling="bare",
                            note="access token + ID token" if alg else
                            "access token only (scope read)")
            result = self.measure(server, "/oauth/token", auth=BASIC,
                                  body="grant_type=client_credentials&scope=read")
            self.record("signing", "hybrid", "issuance, bearer", result, server,
                        ceiling="bare", note="client_credentials, opaque")
            wanted = self.args.threads * int(
                max(result.result.rps, 1000) * (self.args.warmup + self.args.duration)
                * self.args.repeat * 1.2)
            started = time.monotonic()
            proofs = self.dpop_proofs(server, wanted)
            made_in = time.monotonic() - started
            result = self.measure(server, "/oauth/token", auth=BASIC, bodies=str(proofs),
                                  body_header="DPoP")
            self.record("signing", "hybrid", "issuance, DPoP-bound", result, server,
                        ceiling="bare", note=f"client_credentials, ES256 proof with nonce "
                        f"per request ({wanted:,} made in {made_in:.0f} s)")

    def dpop_proofs(self, server: HttpServer, count: int) -> Path:
        """A file of ``count`` lines "<DPoP proof>\t<body>": fresh ES256 proofs for the token
        endpoint, each with its own jti and the server's current nonce."""
        from tests.dpop_proofs import DpopKey

        key = DpopKey("ES256")
        url = ISSUER + "/oauth/token"
        probe = httpx.post(server.base + "/oauth/token", headers={
            "Authorization": BASIC, "DPoP": key.proof("POST", url, iat=int(time.time()))},
            data={"grant_type": "client_credentials", "scope": "read"}, timeout=10)
        nonce = probe.headers.get("dpop-nonce")
        now = int(time.time())
        path = self.procs.tmp / f"dpop-{now}.txt"
        with path.open("w") as out:
            for index in range(count):
                proof = key.proof("POST", url, iat=now, nonce=nonce, jti=f"bench-{now}-{index}")
                out.write(f"{proof}\tgrant_type=client_credentials&scope=read\n")
        return path

    def assertions(self, count: int) -> Path:
        """A file of ``count`` token request bodies, each with a fresh RS256 assertion for
        the service's issuer (``EXTERNAL_BASE_URL``) as its audience."""
        from joserfc import jwt

        now = int(time.time())
        path = self.procs.tmp / f"assertions-{now}.txt"
        header = {"alg": "RS256", "kid": "bench-1"}
        with path.open("w") as out:
            for index in range(count):
                claims = {"iss": JWT_CLIENT_ID, "sub": JWT_CLIENT_ID, "aud": ISSUER,
                          "iat": now, "exp": now + 290, "jti": f"bench-{now}-{index}"}
                assertion = jwt.encode(header, claims, self.jwt_key)
                out.write("grant_type=client_credentials&scope=read&client_assertion_type="
                          + quote(ASSERTION_TYPE, safe="") + "&client_assertion="
                          + assertion + "\n")
        return path

    def run_scim(self, backend: str, server: HttpServer, ceiling: str) -> None:
        probe = httpx.get(server.base + "/scim/v2/ServiceProviderConfig", timeout=5)
        if probe.status_code == 404:
            self.notes.append(f"SCIM not measured for {backend}: /scim/v2 answers 404.")
            return
        bearer = "Bearer " + _access_token(server, "scim:read scim:write")
        user_id = ""
        with httpx.Client(base_url=server.base, headers={"Authorization": bearer},
                          timeout=10) as client:
            for index in range(self.args.scim_users):
                response = client.post("/scim/v2/Users", json={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"bench-user-{index}",
                    "name": {"givenName": "Bench", "familyName": f"User {index}"},
                    "emails": [{"value": f"bench-user-{index}@example.com", "primary": True}],
                })
                if response.status_code != 201:
                    self.notes.append(f"SCIM not measured for {backend}: create answered "
                                      f"{response.status_code} {response.text[:120]}")
                    return
                if index == self.args.scim_users // 2:
                    user_id = response.json()["id"]
        result = self.measure(server, f"/scim/v2/Users/{user_id}", method="GET",
                              auth=bearer)
        self.record("main", backend, "SCIM user GET by id", result, server, ceiling=ceiling,
                    note=f"{self.args.scim_users} users")
        wanted = f"bench-user-{self.args.scim_users // 2}"
        query = quote(f'userName eq "{wanted}"')
        result = self.measure(server, f"/scim/v2/Users?filter={query}", method="GET",
                              auth=bearer)
        self.record("main", backend, "SCIM list, filter userName eq", result, server,
                    ceiling=ceiling, note=f"{self.args.scim_users} users, 1 match")
        # A filter that matches a tenth of the users, sorted on another attribute, one page.
        query = quote('userName sw "bench-user-1"')
        result = self.measure(
            server, f"/scim/v2/Users?filter={query}&sortBy=name.familyName"
            "&sortOrder=descending&count=20", method="GET", auth=bearer)
        self.record("main", backend, "SCIM list, filter sw + sortBy", result, server,
                    ceiling=ceiling, note=f"{self.args.scim_users} users, page of 20")

    def run_scim_bulk(self, backend: str, server: HttpServer, ceiling: str) -> None:
        """A Bulk of 1,000 creates (bench/scim_bulk.py): creates per second beside the
        ceiling's requests per second; p50/p99/max of a whole bulk."""
        bearer = "Bearer " + _access_token(server, "scim:write")
        with httpx.Client(base_url=server.base, headers={"Authorization": bearer},
                          timeout=120) as client:
            try:
                scim_bulk.run_rounds(client, 1)  # warm-up
                cpu_before = server.cpu_seconds()
                walls = scim_bulk.run_rounds(client, self.args.bulk_rounds)
                cpu = server.cpu_seconds() - cpu_before
            except (RuntimeError, httpx.HTTPError) as exc:
                self.notes.append(f"SCIM Bulk not measured for {backend}: {exc}")
                return
        ops = scim_bulk.OPERATIONS * len(walls)
        ordered = sorted(int(w * 1e6) for w in walls)
        result = WrkResult(
            requests=ops, duration_us=int(sum(walls) * 1e6), bytes=0,
            p50_us=ordered[len(ordered) // 2], p90_us=ordered[-1], p99_us=ordered[-1],
            p999_us=ordered[-1], max_us=ordered[-1], mean_us=sum(ordered) / len(ordered))
        self.record("main", backend, "SCIM Bulk, 1000 creates", Measured(result, cpu * 1e6 / ops),
                    server, ceiling=ceiling,
                    note=f"req/s = creates/s over {len(walls)} bulks; latencies per bulk")

    def run_sso(self, backend: str) -> None:
        """The single sign-on hot path: ``GET /oauth/authorize`` with a live session
        cookie, answered 303 with a code (no page; one session read, one grant recorded in
        the session, one code saved), beside the backend's ceiling."""
        print(f"sso: {backend}", flush=True)
        db = new_database(self.pg_url, "bench_sso") if backend == "sql" else ""
        if backend == "hybrid+redis":
            self.redis_flush()
        with self.service(f"sso-{backend}", self.service_env(backend, db)) as server:
            try:
                cookie, query = _sso_session(server)
            except (RuntimeError, httpx.HTTPError) as exc:
                self.notes.append(f"SSO not measured for {backend}: {exc}")
                return
            result = self.measure(server, f"/oauth/authorize?{query}", method="GET",
                                  cookie=cookie)
            self.record("sso", backend, "authorize from a session", result, server,
                        ceiling=CEILING_OF[backend],
                        note="GET /oauth/authorize with a session cookie -> 303 with a code")

    def run_scale(self) -> None:
        big = self.args.large
        print(f"scale: 1,000 vs {big:,} live tokens", flush=True)
        for count in (1000, big):
            env = {**self.service_env("hybrid"), "BENCH_SEED_TOKENS": str(count)}
            started = time.monotonic()
            with self.service(f"seeded-{count}", env, seeded=True, ready_timeout=900) as server:
                seeded_in = time.monotonic() - started
                result = self.measure(server, "/oauth/introspect", auth=BASIC, pool=count)
                self.record("scale", "hybrid", f"introspection, {count:,} tokens", result,
                            server, ceiling="bare",
                            note=f"random token of {count:,}; seeded through the port "
                                 f"in {seeded_in:.0f} s")
        db = new_database(self.pg_url, "bench_scale")
        now = int(time.time())
        loaded = 0
        for count in (1000, big):
            started = time.monotonic()
            asyncio.run(sql_execute(db, _seed_sql(now, loaded, count, live=True),
                                    "VACUUM ANALYZE tokens"))
            seeded_in = time.monotonic() - started
            loaded = count
            with self.service(f"sql-scale-{count}", self.service_env("sql", db)) as server:
                result = self.measure(server, "/oauth/introspect", auth=BASIC, pool=count)
                self.record("scale", "sql", f"introspection, {count:,} tokens", result, server,
                            ceiling="+1 SELECT",
                            note=f"random token of {count:,}; INSERT ... SELECT "
                                 f"generate_series in {seeded_in:.0f} s")

    def run_purge(self) -> None:
        big = self.args.large
        print(f"purge: {big:,} expired tokens", flush=True)
        trigger = self.procs.tmp / "purge-trigger"
        env = {**self.service_env("hybrid"), "BENCH_SEED_TOKENS": "1000",
               "BENCH_SEED_EXPIRED": str(big), "BENCH_PURGE_TRIGGER": str(trigger)}
        with self.service("purge-hybrid", env, seeded=True, ready_timeout=900) as server:
            result = self.measure(server, "/oauth/introspect", auth=BASIC, pool=1000,
                                  duration=self.args.purge_window)
            self.record("purge", "hybrid", "introspection, no purge", result, server,
                        ceiling="bare", note=f"{big:,} expired tokens stored")
            done = Path(f"{trigger}.done")
            result, report = self._during(server, lambda: trigger.touch(), done)
            self.record("purge", "hybrid", "introspection during purge", result, server,
                        ceiling="bare", note=report)
        db = new_database(self.pg_url, "bench_purge")
        now = int(time.time())
        asyncio.run(sql_execute(db, _seed_sql(now, 0, 1000, live=True),
                                _seed_sql(now, 1000, big + 1000, live=False),
                                "VACUUM ANALYZE tokens"))
        with self.service("purge-sql", self.service_env("sql", db)) as server:
            result = self.measure(server, "/oauth/introspect", auth=BASIC, pool=1000,
                                  duration=self.args.purge_window)
            self.record("purge", "sql", "introspection, no purge", result, server,
                        ceiling="+1 SELECT", note=f"{big:,} expired rows stored")
            done = self.procs.tmp / "sql-purge.done"
            purger = subprocess.Popen(
                [str(VENV_BIN / "python"), "-m", "bench.purge", db, str(done)], cwd=ROOT,
                env={**os.environ, "BENCH_PURGE_WAIT": str(self.procs.tmp / "sql-go")})
            try:
                result, report = self._during(
                    server, lambda: (self.procs.tmp / "sql-go").touch(), done)
            finally:
                purger.wait(600)
            self.record("purge", "sql", "introspection during purge", result, server,
                        ceiling="+1 SELECT", note=report + " (purge from another process)")

    def _during(
        self, server: HttpServer, start: Callable[[], object], done: Path,
    ) -> tuple[Measured, str]:
        """wrk (pool of 1000) from just before ``start()`` until the purge writes ``done``."""
        cpu_before = server.cpu_seconds()
        load = self.wrk(server.base + "/oauth/introspect", auth=BASIC, pool=1000,
                        duration=self.args.purge_window, background=True)
        assert isinstance(load, subprocess.Popen)
        time.sleep(0.3)
        start()
        deadline = time.monotonic() + 900
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        out, _ = load.communicate()
        result = parse_wrk_output(out)
        cpu = server.cpu_seconds() - cpu_before
        report = msgspec.json.decode(done.read_bytes()) if done.exists() else {}
        seconds = float(report.get("seconds", 0))
        counts = report.get("counts", {})
        covered = min(seconds, self.args.purge_window - 0.3)
        text = (f"purge of {counts.get('access_tokens', '?'):,} tokens took {seconds:.1f} s; "
                f"wrk window {self.args.purge_window:.0f} s, {covered:.1f} s of it purging")
        if seconds > self.args.purge_window - 0.3:
            text += " (purge outlasted the window)"
        return Measured(result, cpu * 1e6 / max(result.requests, 1)), text

    def run_workers(self) -> None:
        print("workers: 1 vs 2 (cores 0-1, wrk shares core 1)", flush=True)
        for backend in ("hybrid+redis", "sql"):
            db = new_database(self.pg_url, "bench_workers") if backend == "sql" else ""
            if backend == "hybrid+redis":
                self.redis_flush()
            for workers in (1, 2):
                env = self.service_env(backend, db)
                with self.service(f"workers-{backend}-{workers}", env, workers=workers,
                                  cpus=BOTH_CPUS) as server:
                    token = _access_token(server, "read")
                    for scenario, body in (("issuance", "grant_type=client_credentials&scope=read"),
                                           ("introspection", f"token={token}")):
                        path = "/oauth/token" if scenario == "issuance" else "/oauth/introspect"
                        result = self.measure(server, path, auth=BASIC, body=body)
                        self.record("workers", backend, f"{scenario}, --workers {workers}",
                                    result, server, ceiling=CEILING_OF[backend])

    def run_memory(self) -> list[dict[str, object]]:
        print("memory per token (hybrid, in process, through the port)", flush=True)
        results = []
        for method, tokens in (("tracemalloc", 200_000), ("rss", self.args.large)):
            out = subprocess.run(
                [str(VENV_BIN / "python"), "-m", "bench.memory", "--method", method,
                 "--tokens", str(tokens)], cwd=ROOT, capture_output=True, text=True, check=True)
            results.append(msgspec.json.decode(out.stdout.strip().splitlines()[-1]))
            print(f"  {results[-1]}", flush=True)
        return results

    # Driver

    def run(self) -> int:
        sections = set(self.args.sections.split(","))
        memory: list[dict[str, object]] = []
        started = time.monotonic()
        try:
            self.redis_url = self.procs.start_redis(LOAD_CPUS)
            self.pg_url = self.procs.start_postgres(LOAD_CPUS)
            if "main" in sections:
                # Each backend's ceiling right before it: the ratio then compares two runs
                # minutes apart at most, whatever else the machine is doing.
                for backend in self.args.backends.split(","):
                    self.run_ceilings((CEILING_OF[backend],))
                    self.run_backend(backend)
            if "signing" in sections:
                if "bare" not in self.ceilings:
                    self.run_ceilings(("bare",))
                self.run_signing()
            missing = tuple(n for n in CEILING_PATHS if n not in self.ceilings)
            if missing and sections - {"main", "memory", "signing", "sso"}:
                self.run_ceilings(missing)
            if "sso" in sections:
                for backend in self.args.backends.split(","):
                    if CEILING_OF[backend] not in self.ceilings:
                        self.run_ceilings((CEILING_OF[backend],))
                    self.run_sso(backend)
            if "scale" in sections:
                self.run_scale()
            if "purge" in sections:
                self.run_purge()
            if "workers" in sections:
                self.run_workers()
            if "memory" in sections:
                memory = self.run_memory()
        finally:
            self.procs.stop_all()
        report = render(self, memory, time.monotonic() - started)
        print(report)
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / "latest.md").write_text(report)
        (RESULTS_DIR / "latest.json").write_bytes(msgspec.json.format(msgspec.json.encode(
            {"rows": self.rows, "ceilings": self.ceilings, "memory": memory})))
        return 0


def _toml_inline(json_text: str) -> str:
    """A JSON object of strings and lists as a TOML inline table."""
    return json_text.replace('":', '" =')


def _seed_sql(now: int, start: int, stop: int, *, live: bool) -> str:
    """Tokens ``start..stop-1`` as rows, with the hash PostgreSQL computes (``sha256``)."""
    exp = now + 86_400 if live else now - 1
    iat = now if live else now - 7200
    return (
        "INSERT INTO tokens (token_hash, token_display, active, scope, client_id, exp, iat) "
        "SELECT encode(sha256(convert_to(v, 'UTF8')), 'hex'), left(v, 7) || '...', true, "
        f"'read', 'bench', {exp}, {iat} "
        f"FROM (SELECT 'tk_bench' || lpad(i::text, 10, '0') AS v "
        f"FROM generate_series({start}, {stop - 1}) AS i) AS s"
    )


def _access_token(server: HttpServer, scope: str) -> str:
    response = httpx.post(server.base + "/oauth/token", headers={"Authorization": BASIC},
                          data={"grant_type": "client_credentials", "scope": scope}, timeout=10)
    if response.status_code != 200:
        raise RuntimeError(f"token request answered {response.status_code}: {response.text}")
    return str(response.json()["access_token"])


def _sso_session(server: HttpServer) -> tuple[str, str]:
    """A user created over SCIM, signed in once through the pages: the session cookie
    (``name=value``) and the authorization request's query the session then answers."""
    bearer = {"Authorization": "Bearer " + _access_token(server, "scim:write")}
    created = httpx.post(server.base + "/scim/v2/Users", headers=bearer, timeout=10, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bench-sso-user", "password": SSO_PASSWORD})
    if created.status_code != 201:
        raise RuntimeError(f"user create answered {created.status_code} {created.text[:120]}")
    query = httpx.QueryParams({
        "response_type": "code", "client_id": SSO_CLIENT_ID, "redirect_uri": SSO_REDIRECT,
        "scope": "openid profile", "state": "bench", "nonce": "bench",
        "code_challenge": pkce_s256("bench-verifier-" + "v" * 40),
        "code_challenge_method": "S256"})
    with httpx.Client(base_url=server.base, timeout=10) as browser:
        page = browser.get(f"/oauth/authorize?{query}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if page.status_code != 200 or csrf is None:
            raise RuntimeError(f"sign-in page answered {page.status_code}")
        signed_in = browser.post("/oauth/authorize", data={
            "csrf_token": csrf.group(1), "step": "password", "action": "signin",
            "username": "bench-sso-user", "password": SSO_PASSWORD})
        session = browser.cookies.get("session")
        if signed_in.status_code != 303 or not session:
            raise RuntimeError(f"sign-in answered {signed_in.status_code}, no session")
        answered = browser.get(f"/oauth/authorize?{query}")
        if answered.status_code != 303 or "code=" not in answered.headers.get("location", ""):
            raise RuntimeError(f"the session did not answer: {answered.status_code}")
    return f"session={session}", str(query)


def _ms(value: float) -> str:
    return f"{value:.2f}"


def render(bench: Bench, memory: list[dict[str, object]], elapsed: float) -> str:
    args = bench.args
    lines = [
        "# auth-service benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}; {os.cpu_count()} CPUs; server on core "
        f"{SERVER_CPUS}, wrk -t{args.threads} -c{args.connections} on core {LOAD_CPUS} with "
        f"Redis and PostgreSQL; {args.duration:g} s runs after {args.warmup:g} s warm-up, "
        f"best of {args.repeat}; whole run {elapsed / 60:.1f} min.",
        "",
    ]
    titles = {
        "main": "Throughput and latency (ratio = req/s divided by the ceiling named)",
        "signing": "Signing: ID-token algorithms and DPoP-bound issuance (target: each ≥ 0.40)",
        "sso": "Single sign-on: an authorization answered from an existing session",
        "scale": "Scale: introspection of a random token among N stored",
        "purge": "Purge of expired tokens under load",
        "workers": "Workers (server on cores 0-1, wrk on core 1)",
    }
    for section, title in titles.items():
        rows = [r for r in bench.rows if r.section == section]
        if not rows:
            continue
        lines += [f"## {title}", "",
                  "| backend | scenario | req/s | p50 ms | p99 ms | max ms | RSS MB | CPU µs/req "
                  "| ratio to | ratio | CPU ratio | target | errors | note |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---|"]
        for r in rows:
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
            cpu_ratio = f"{r.cpu_ratio:.2f}" if r.cpu_ratio is not None else ""
            lines.append(
                f"| {r.backend} | {r.scenario} | {r.rps:,.0f} | {_ms(r.p50_ms)} | "
                f"{_ms(r.p99_ms)} | {_ms(r.max_ms)} | {r.rss_mb:.0f} | {r.cpu_us:.0f} | "
                f"{r.ceiling} | {ratio} | {cpu_ratio} | {r.target} | {r.errors} | {r.note} |")
        lines.append("")
        if section == "scale":
            for backend in ("hybrid", "sql"):
                pair = [r for r in rows if r.backend == backend]
                if len(pair) == 2 and pair[0].rps:
                    change = pair[1].rps / pair[0].rps - 1
                    verdict = "ok" if change >= -0.10 else "MISSED"
                    lines.append(f"- {backend}: {pair[1].scenario.split(', ')[1]} vs 1,000: "
                                 f"{change:+.1%} (target: within 10%) {verdict}")
            lines.append("")
        if section == "workers":
            for backend in ("hybrid+redis", "sql"):
                for scenario in ("issuance", "introspection"):
                    pair = [r for r in rows
                            if r.backend == backend and r.scenario.startswith(scenario)]
                    if len(pair) == 2 and pair[0].rps:
                        lines.append(f"- {backend} {scenario}: 2 workers / 1 worker = "
                                     f"{pair[1].rps / pair[0].rps:.2f}")
            lines.append("")
    if memory:
        lines += ["## Hybrid memory per stored access token (target ≤ 600 bytes)", ""]
        for m in memory:
            per = float(m["bytes_per_token"])  # type: ignore[arg-type]
            lines.append(f"- {m['method']} over {int(m['tokens']):,} tokens "  # type: ignore[call-overload]
                         f"saved with `save_tokens`: {per:.0f} bytes/token "
                         f"{'ok' if per <= 600 else 'MISSED'}")
        lines.append("")
    failed = [r for r in bench.rows if r.errors]
    if failed:
        lines.append("**Errors**: " + "; ".join(
            f"{r.backend} {r.scenario}: {r.errors}" for r in failed)
            + " (non-2xx answers or socket errors; those figures are not valid).")
    lines += [f"- {note}" for note in bench.notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10, help="seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per run (2)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure, best kept (1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sections", default="main,signing,sso,scale,purge,workers,memory")
    parser.add_argument("--backends", default="hybrid,hybrid+redis,sql")
    parser.add_argument("--large", type=int, default=1_000_000,
                        help="tokens for the scale, purge and memory checks (1,000,000)")
    parser.add_argument("--purge-window", type=float, default=5,
                        help="seconds of load around the purge (5)")
    parser.add_argument("--scim-users", type=int, default=100)
    parser.add_argument("--bulk-rounds", type=int, default=3,
                        help="SCIM Bulks of 1,000 creates per backend (3)")
    args = parser.parse_args(argv)
    return Bench(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
