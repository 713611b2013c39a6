"""Several service processes on one store: two on one Redis (hybrid), two on one PostgreSQL
(sql). A token issued on one is introspected and revoked on the other; one instance is
killed (SIGKILL) under load and the survivor loses no token and answers no 5xx."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.ops_support import CLIENT_CREDENTIALS, SERVICE_ID, SERVICE_SECRET, signing_key_file
from tests.services.auth_service_process import CLI, ServedProcess
from tests.services.postgres_server import create_migrated_database, drop_database, postgres_url
from tests.services.redis_server import local_redis

AUTH = (SERVICE_ID, SERVICE_SECRET)


@pytest.fixture(params=[pytest.param("hybrid", marks=pytest.mark.redis),
                        pytest.param("sql", marks=pytest.mark.postgres)])
def backend_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The environment of instances sharing one fresh store of the backend."""
    if request.param == "hybrid":
        redis = local_redis()
        redis.start()
        try:
            yield {"STORE_BACKEND": "hybrid", "REDIS_URL": redis.url}
        finally:
            redis.stop()
            redis.cleanup()
    else:
        url = asyncio.run(create_migrated_database(postgres_url()))
        try:
            yield {"STORE_BACKEND": "sql", "DATABASE_URL": url}
        finally:
            asyncio.run(drop_database(url))


@pytest.fixture
def pair(backend_env: dict[str, str]) -> Iterator[tuple[ServedProcess, ServedProcess]]:
    env = {**backend_env, "CLIENT_CREDENTIALS": CLIENT_CREDENTIALS,
           "SIGNING_KEY_FILE": signing_key_file()}
    first, second = ServedProcess(env), ServedProcess(env)
    try:
        first.wait_ready()
        second.wait_ready()
        yield first, second
    finally:
        for served in (first, second):
            served.close()


def issue(client: httpx.Client, served: ServedProcess) -> httpx.Response:
    return client.post(f"{served.url}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=AUTH)


def introspect(client: httpx.Client, served: ServedProcess, token: str) -> dict[str, Any]:
    response = client.post(f"{served.url}/oauth/introspect", data={"token": token}, auth=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_issue_on_one_introspect_and_revoke_on_the_other(
    pair: tuple[ServedProcess, ServedProcess],
) -> None:
    first, second = pair
    with httpx.Client(timeout=10) as client:
        response = issue(client, first)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]

        seen = introspect(client, second, token)
        assert seen["active"] is True and seen["client_id"] == SERVICE_ID

        revoked = client.post(f"{second.url}/oauth/revoke", data={"token": token}, auth=AUTH)
        assert revoked.status_code == 200
        # At once, on both: no stale cache window.
        assert introspect(client, first, token) == {"active": False}
        assert introspect(client, second, token) == {"active": False}


def test_killing_one_instance_under_load_loses_no_token(
    pair: tuple[ServedProcess, ServedProcess],
) -> None:
    first, second = pair
    issued: list[str] = []
    survivor_statuses: list[int] = []
    killed = threading.Event()
    stop = threading.Event()
    lock = threading.Lock()
    failures: list[BaseException] = []

    def load(target: ServedProcess) -> None:
        try:
            load_until_stopped(target)
        except BaseException as exc:  # surfaced by the assertions below, not lost in a thread
            failures.append(exc)

    def load_until_stopped(target: ServedProcess) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    response = issue(client, target)
                except httpx.HTTPError:
                    if target is first and killed.is_set():
                        time.sleep(0.01)  # the dead instance: no answer is no token
                        continue
                    raise
                with lock:
                    if target is second:
                        survivor_statuses.append(response.status_code)
                    if response.status_code == 200:
                        issued.append(response.json()["access_token"])

    workers = [threading.Thread(target=load, args=(target,), daemon=True)
               for target in (first, first, second, second)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    killed.set()  # before the kill: from here on, the first instance may not answer
    first.kill()  # SIGKILL: no shutdown, no flush
    time.sleep(1.5)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)

    assert failures == []
    assert first.process.returncode == -9
    assert survivor_statuses and all(status < 500 for status in survivor_statuses)
    assert len(issued) > 20
    with httpx.Client(timeout=10) as client:
        lost = [token for token in issued if not introspect(client, second, token)["active"]]
    assert lost == []
    assert "Traceback" not in second.output()


@pytest.mark.redis
def test_workers_share_one_metrics_view() -> None:
    """``serve --workers 2``: /metrics sums every worker, whichever one answers the scrape."""
    redis = local_redis()
    redis.start()
    served = ServedProcess({"REDIS_URL": redis.url, "CLIENT_CREDENTIALS": CLIENT_CREDENTIALS,
                            "SIGNING_KEY_FILE": signing_key_file()}, "--workers", "2")
    try:
        served.wait_ready()
        with httpx.Client(timeout=10) as client:
            for _ in range(30):
                assert issue(client, served).status_code == 200
            scrapes = []
            for _ in range(8):
                # A new connection each time, so that scrapes spread over the workers.
                text = httpx.get(f"{served.url}/metrics", timeout=10).text
                scrapes.append(next(
                    float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith('auth_tokens_issued_total{grant_type="client_credentials"}')
                ))
        assert scrapes == [30.0] * 8
    finally:
        served.close()
        redis.stop()
        redis.cleanup()


@pytest.mark.postgres
def test_purge_command_purges_a_shared_database() -> None:
    """``auth-service purge`` (cron) against PostgreSQL: expired rows go, live rows stay."""
    from adapters.sql import open_sql_store
    from domain.entities import AccessToken

    url = asyncio.run(create_migrated_database(postgres_url()))
    now = int(time.time())

    async def seed() -> None:
        store = await open_sql_store(url)
        try:
            for n, exp in enumerate((now - 10, now - 5, now + 3600)):
                await store.save_tokens(AccessToken(
                    token_hash=f"{n:064x}", token_display="tk_abcd...", active=True,
                    scope="read", client_id=SERVICE_ID, exp=exp, iat=now - 20), None, now - 20)
        finally:
            await store.close()

    try:
        asyncio.run(seed())
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("STORE_", "DATABASE_", "REDIS_"))}
        result = subprocess.run(
            [CLI, "purge"], env={**clean, "STORE_BACKEND": "sql", "DATABASE_URL": url},
            capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        assert "access_tokens=2" in result.stdout
        assert "Traceback" not in result.stderr
    finally:
        asyncio.run(drop_database(url))
