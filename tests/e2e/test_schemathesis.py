"""Property-based requests against the application's own OpenAPI document: zero 5xx.

Schemathesis generates requests for every operation in ``/schema/openapi.json`` (bounded
examples, no deadline) and sends them through the ASGI app. Clients authenticate as they
would in production, so generated input gets past authentication into the handlers:
HTTP Basic on the OAuth endpoints, a ``scim:read scim:write admin`` bearer token elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from schemathesis.checks import not_a_server_error

from domain.entities import AccessToken
from domain.tokens import hash_token, token_display
from tests.e2e.ops_support import SERVICE_ID, SERVICE_SECRET

SCIM_TOKEN = "tk_schemathesis" + "s" * 40
_BASIC_PATHS = ("/oauth/token", "/oauth/introspect", "/oauth/revoke")


def _app() -> tuple[Litestar, Any]:
    """The app over a memory store (lifespan not yet run) and a fixture that runs it."""
    from adapters.memory.store import MemoryStore
    from entrypoints.app import create_app
    from entrypoints.settings import load_settings
    from tests.e2e.ops_support import CLIENT_CREDENTIALS, signing_key_file

    store = MemoryStore()
    app = create_app(load_settings({"CLIENT_CREDENTIALS": CLIENT_CREDENTIALS,
                                    "SIGNING_KEY_FILE": signing_key_file()}), store=store)
    return app, store


APP, STORE = _app()
schema = schemathesis.openapi.from_asgi("/schema/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def scim_token() -> None:
    """A bearer token for SCIM, straight into the store (schemathesis runs the lifespan)."""
    now = int(time.time())
    asyncio.run(STORE.save_tokens(AccessToken(
        token_hash=hash_token(SCIM_TOKEN), token_display=token_display(SCIM_TOKEN),
        active=True, scope="scim:read scim:write admin openid profile email", client_id=SERVICE_ID,
        exp=now + 86400, iat=now), None, now))


@schema.parametrize()
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_generated_request_gets_a_server_error(case: Any) -> None:
    if case.path in _BASIC_PATHS:
        case.call_and_validate(auth=(SERVICE_ID, SERVICE_SECRET), checks=[not_a_server_error])
    else:
        case.call_and_validate(headers={"Authorization": f"Bearer {SCIM_TOKEN}"},
                               checks=[not_a_server_error])
