"""Structured logs: JSON lines, request ids, console format, and no secrets in any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoints.logging import configure_logging, redact
from entrypoints.settings import load_settings
from tests.e2e.ops_support import SERVICE_ID, SERVICE_SECRET, client_token, ops_app
from tests.e2e.signin_flow import (
    CONFIDENTIAL_SECRET,
    PASSWORD,
    PUBLIC_ID,
    Harness,
    auth_params,
    full_flow,
    sign_in,
)


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with ops_app(tmp_path, LOG_LEVEL="DEBUG") as running:
        yield running


@pytest.fixture
def logs(h: Harness) -> Iterator[Captured]:
    # After create_app, which installed the handler on stderr: this one replaces it.
    stream = io.StringIO()
    handler = configure_logging(load_settings({"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}),
                                stream)
    yield Captured(stream)
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(logging.INFO)


def test_a_sane_request_id_is_kept_echoed_and_in_every_line(h: Harness, logs: Captured) -> None:
    h.add_user()
    page = h.client.get("/oauth/authorize", params=auth_params())
    assert page.status_code == 200
    response = sign_in(h, auth_params(), password="wrong")
    assert response.status_code != 500
    request_id = "req-7f3a.b2:c/9"
    response = h.client.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(SERVICE_ID, SERVICE_SECRET),
                             headers={"x-request-id": request_id})
    assert response.headers["x-request-id"] == request_id

    lines = logs.lines()
    in_request = [line for line in lines if line.get("request_id") == request_id]
    assert [line["message"] for line in in_request if line["logger"] != "httpx"] == [
        "token_issued", "request",
    ]
    failed = [line for line in lines if line["message"] == "signin_failed"]
    assert len(failed) == 1 and failed[0]["level"] == "warning"
    assert failed[0]["reason"] == "bad_password" and failed[0]["request_id"]
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line)


@pytest.mark.parametrize("bad", ["x" * 129, "a b", "<script>", "id\u00e9"])
def test_an_insane_request_id_is_replaced(h: Harness, bad: str) -> None:
    response = h.client.get("/health", headers={"x-request-id": bad.encode("utf-8")})
    echoed = response.headers["x-request-id"]
    assert echoed != bad and len(echoed) == 24 and int(echoed, 16) >= 0


def test_each_request_gets_its_own_generated_id(h: Harness) -> None:
    first = h.client.get("/health").headers["x-request-id"]
    second = h.client.get("/health").headers["x-request-id"]
    assert first != second


def test_no_secret_or_token_value_reaches_the_logs(h: Harness, logs: Captured) -> None:
    h.add_user()
    secrets: list[str] = [PASSWORD, SERVICE_SECRET, CONFIDENTIAL_SECRET]
    tokens = full_flow(h)
    secrets += [tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]
    refreshed = h.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": PUBLIC_ID})
    secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
    # Reuse of the rotated refresh token: a security event that names the grant.
    h.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": PUBLIC_ID})
    service = client_token(h.client).json()["access_token"]
    secrets.append(service)
    auth = (SERVICE_ID, SERVICE_SECRET)
    h.client.post("/oauth/introspect", data={"token": service}, auth=auth)
    h.client.post("/oauth/revoke", data={"token": service}, auth=auth)
    h.client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    # A failing request whose body carries a secret.
    h.client.post("/oauth/token", data={"grant_type": "client_credentials",
                                        "client_id": SERVICE_ID, "client_secret": "x" * 40})
    sign_in(h, auth_params(), password="not-the-password-" + "q" * 20)
    secrets.append("not-the-password-" + "q" * 20)

    text = logs.text
    assert "refresh_token_reused" in text and "token_issued" in text  # the flow was logged
    for secret in secrets:
        assert secret not in text
        assert secret[:20] not in text  # not even a long prefix
    assert logs.lines()


def test_console_format_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    handler = configure_logging(load_settings({}), stream)
    try:
        logging.getLogger("auth_service.test").warning("hello", extra={"event": "x", "n": 1})
    finally:
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue().strip()
    assert "WARNING" in line and "auth_service.test: hello" in line and "n=1" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_json_format_when_not_a_terminal_and_level_respected() -> None:
    stream = io.StringIO()
    handler = configure_logging(load_settings({"LOG_LEVEL": "WARNING"}), stream)
    try:
        logging.getLogger("auth_service.test").info("quiet")
        logging.getLogger("auth_service.test").error("loud", extra={"count": 3})
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "loud" and line["count"] == 3 and line["level"] == "error"


def test_redaction_is_a_last_line_of_defence() -> None:
    token = "tk_" + "A1b2" * 11
    text = redact(f"got {token} from client_secret=hunter2hunter2&x=1, Authorization: Bearer "
                  f"{token} refresh_token=rt_abcdefghijklmnop")
    assert token not in text and "hunter2" not in text and "rt_abcdefghijklmnop" not in text
    assert "tk_A1b2..." in text


def test_uvicorn_writes_no_access_line_per_request() -> None:
    # uvicorn logs each request whenever its access logger has a handler (through
    # propagation too), whatever access_log was passed: that was ~12% of a request's CPU.
    handler = configure_logging(load_settings({"LOG_LEVEL": "INFO"}), io.StringIO())
    try:
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        assert logging.getLogger("uvicorn.error").hasHandlers()
    finally:
        logging.getLogger().removeHandler(handler)
