"""Several service processes on one store: two on one Redis (hybrid), two on one PostgreSQL
(sql). A token issued on one is introspected and revoked on the other; one instance is
killed (SIGKILL) under load and the survivor loses no token and answers no 5xx."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.ops_support import CLIENT_CREDENTIALS, SERVICE_ID, SERVICE_SECRET, signing_key_file
from tests.services.auth_service_process import ServedProcess
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

    def load(target: ServedProcess) -> None:
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
    first.kill()  # SIGKILL: no shutdown, no flush
    killed.set()
    time.sleep(1.5)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)

    assert first.process.returncode == -9
    assert survivor_statuses and all(status < 500 for status in survivor_statuses)
    assert len(issued) > 20
    with httpx.Client(timeout=10) as client:
        lost = [token for token in issued if not introspect(client, second, token)["active"]]
    assert lost == []
    assert "Traceback" not in second.output()
