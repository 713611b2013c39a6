"""The consent page of a client that is not first party: shown, remembered, asked again
only for new scopes (always with ``prompt=consent``), and "not you?", on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import (
    PARTNER_ID,
    PARTNER_REDIRECT,
    Form,
    Harness,
    auth_params,
    harness,
    redirect_params,
    submit_form,
    visit,
)


@pytest.fixture
def h(store: StoreBackend, tmp_path: Path) -> Iterator[Harness]:
    with harness(tmp_path, backend=store) as running:
        yield running


def _partner(**overrides: str | None) -> dict[str, str]:
    return auth_params(client_id=PARTNER_ID, redirect_uri=PARTNER_REDIRECT, **overrides)


def test_the_first_authorization_asks_for_consent_then_it_is_remembered(h: Harness) -> None:
    user = h.add_user()
    page = visit(h, _partner(scope="openid email"), consent=None)
    assert page.pages == ["password", "consent"]
    html = page.response.text
    assert page.response.status_code == 200
    assert "Allow Partner App to access your account?" in html
    assert "Your email address (<code>email</code>)" in html
    assert "Signed in as <strong>alice</strong>" in html
    assert Form(html).autofocus == ["action"]  # the Allow button
    params = redirect_params(submit_form(h.client, page.response, 0, action="allow"))
    assert params["state"] == "st-123" and params["code"].startswith("ac_")
    consent = h.run(h.store.get_consent(user.id, PARTNER_ID))
    assert consent is not None and consent.scopes == ("email", "openid")
    assert "consent_granted" in h.events.names()

    again = visit(h, _partner(scope="openid email"))
    assert again.pages == [] and "code" in again.params


def test_a_new_scope_is_asked_for_alone(h: Harness) -> None:
    user = h.add_user()
    visit(h, _partner(scope="openid"))
    wider = visit(h, _partner(scope="openid read"), consent=None)
    assert wider.pages == ["consent"]
    html = wider.response.text
    assert "<code>read</code>" in html.split("You allowed it earlier")[0]
    assert "You allowed it earlier: Confirm your identity (<code>openid</code>)" in html
    assert "code" in redirect_params(submit_form(h.client, wider.response, 0, action="allow"))
    consent = h.run(h.store.get_consent(user.id, PARTNER_ID))
    assert consent is not None and consent.scopes == ("openid", "read")


def test_prompt_consent_always_asks(h: Harness) -> None:
    h.add_user()
    visit(h, _partner())
    asked = visit(h, _partner(prompt="consent"))
    assert asked.pages == ["consent"] and "code" in asked.params
    # Even a first-party client asks when the client itself says so.
    assert visit(h, auth_params(prompt="consent")).pages == ["consent"]


def test_deny_goes_back_as_access_denied_and_remembers_nothing(h: Harness) -> None:
    user = h.add_user()
    denied = visit(h, _partner(), consent="deny")
    params = denied.params
    assert params["error"] == "access_denied" and params["state"] == "st-123"
    assert denied.response.headers["location"].startswith(PARTNER_REDIRECT + "?")
    assert h.run(h.store.get_consent(user.id, PARTNER_ID)) is None


def test_not_you_ends_the_session_and_signs_someone_else_in(h: Harness) -> None:
    alice = h.add_user()
    bob = h.add_user("bob", email="bob@example.test")
    visit(h, auth_params())
    alice_session = h.session()
    assert alice_session is not None and alice_session.user_id == alice.id
    consent_page = visit(h, _partner(), consent=None).response
    switched = submit_form(h.client, consent_page, 1, action="switch_user")
    assert switched.status_code == 200 and 'name="password"' in switched.text
    assert "Sign in to continue to Partner App" in switched.text
    assert h.session() is None
    assert [e["reason"] for e in h.events.named("session_ended")] == ["switch_user"]
    # The sign-in page is for the same request: bob signs in and is asked himself.
    done = submit_form(h.client, switched, 0, username="bob",
                       password="correct horse battery staple")
    assert "Signed in as <strong>bob</strong>" in done.text
    assert "code" in redirect_params(submit_form(h.client, done, 0, action="allow"))
    session = h.session()
    assert session is not None and session.user_id == bob.id


def test_a_withdrawn_consent_is_asked_for_again(h: Harness) -> None:
    user = h.add_user()
    visit(h, _partner())
    assert h.run(h.store.withdraw_consent(user.id, PARTNER_ID, h.clock.now())) is not None
    again = visit(h, _partner())
    assert again.pages == ["consent"] and "code" in again.params


def test_each_code_is_recorded_under_the_consent(h: Harness) -> None:
    user = h.add_user()
    visit(h, _partner())
    visit(h, _partner())
    record = h.run(h.store.withdraw_consent(user.id, PARTNER_ID, h.clock.now()))
    session = h.session()
    assert record is not None and session is not None
    assert len(record.grants) == 2
    # The same grants as the session's: a logout and a withdrawal revoke the same tokens.
    ended = h.run(h.store.end_session(session.id_hash, h.clock.now()))
    assert {g.grant_id for g in ended.grants} == {g.grant_id for g in record.grants}


def test_a_first_party_client_never_asks(h: Harness) -> None:
    h.add_user()
    assert visit(h, auth_params()).pages == ["password"]
    assert visit(h, auth_params(scope="openid read")).pages == []


def test_a_consent_form_of_another_session_starts_over(h: Harness) -> None:
    h.add_user()
    page = visit(h, _partner(), consent=None).response
    h.client.cookies.delete("session")
    response = submit_form(h.client, page, 0, action="allow")
    assert response.status_code == 200 and 'name="password"' in response.text
