"""Email verification end to end: a SCIM-provisioned user gets a link, the link's page
spends it on its button (not on the GET), ``email_verified`` turns true in the ID token and
at userinfo only then; an ``/account`` change of address mails a new link and unverifies at
once; resending is throttled; without a mail server nothing is sent and the page says so.

Mail is recorded (tests.doubles.RecordingMailer); the drivers
(tests/e2e/email_verification_support.py) take any :class:`Inbox`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from domain.email_verification import USER_SENDS
from domain.entities import Email
from tests.doubles import RecordingMailer
from tests.e2e.conftest import StoreBackend
from tests.e2e.email_verification_support import (
    PROVISIONING_ENV,
    RecordingInbox,
    account_form,
    account_page,
    change_email,
    email_verified_claims,
    open_link,
    resend,
    scim_bulk_create,
    scim_create_user,
    scim_set_email,
    scim_token,
    use_link,
    userinfo,
)
from tests.e2e.signin_flow import Harness, harness

ALICE = "alice@example.test"


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def h(tmp_path: Path, mailer: RecordingMailer) -> Iterator[Harness]:
    with harness(tmp_path, mailer=mailer, **PROVISIONING_ENV) as running:
        yield running


def _done(response: httpx.Response, done: str) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/account?done={done}"


def test_a_scim_user_gets_a_link_that_flips_email_verified(
    tmp_path: Path, store: StoreBackend
) -> None:
    mailer = RecordingMailer()
    inbox = RecordingInbox(mailer)
    with harness(tmp_path, mailer=mailer, backend=store, **PROVISIONING_ENV) as h:
        scim_create_user(h, scim_token(h), "alice", ALICE)
        [link] = inbox.links_to(ALICE)
        assert link.startswith("http://auth.test/account/verify-email?token=ev_")

        in_id_token, at_userinfo, before = email_verified_claims(h, "alice")
        assert (in_id_token, at_userinfo) == (False, False)
        assert userinfo(h, before["access_token"])["email"] == ALICE

        # Mail scanners follow links: the GET shows a button and spends nothing.
        for _ in range(2):
            page = open_link(h, link)
            assert page.status_code == 200 and "Verify my email address" in page.text
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["referrer-policy"] == "no-referrer"
        done = use_link(h, link)
        assert done.status_code == 200, done.text
        assert f"{ALICE} is verified" in done.text

        in_id_token, at_userinfo, _ = email_verified_claims(h, "alice")
        assert (in_id_token, at_userinfo) == (True, True)
        # Userinfo says what is true now, also for a token from before.
        assert userinfo(h, before["access_token"])["email_verified"] is True
        assert "verified)" in account_page(h).text

        again = use_link(h, link)
        assert again.status_code == 400 and "does not work" in again.text


def test_an_account_change_mails_a_new_link_and_unverifies_until_used(
    h: Harness, mailer: RecordingMailer
) -> None:
    inbox = RecordingInbox(mailer)
    token = scim_token(h)
    scim_create_user(h, token, "alice", ALICE)
    scim_link = inbox.links_to(ALICE)[0]
    _, _, tokens = email_verified_claims(h, "alice")  # the browser is signed in now

    _done(change_email(h, "Alice.New@example.test"), "email_changed")

    [link] = inbox.links_to("Alice.New@example.test")
    page = account_page(h, "email_changed").text
    assert "Alice.New@example.test (not verified)" in page
    assert "We sent a verification link to the new address" in page
    assert userinfo(h, tokens["access_token"])["email_verified"] is False
    assert use_link(h, scim_link).status_code == 400  # replaced by the new one
    assert use_link(h, link).status_code == 200
    assert userinfo(h, tokens["access_token"])["email_verified"] is True
    assert email_verified_claims(h, "alice")[:2] == (True, True)

    # The provisioning client changes it again: unverified at once, a new link.
    user_id = userinfo(h, tokens["access_token"])["sub"]
    assert scim_set_email(h, token, user_id, "alice@corp.example").status_code == 200
    assert userinfo(h, tokens["access_token"])["email_verified"] is False
    assert len(inbox.links_to("alice@corp.example")) == 1


def test_a_link_for_an_address_changed_since_is_refused(
    h: Harness, mailer: RecordingMailer
) -> None:
    inbox = RecordingInbox(mailer)
    user = scim_create_user(h, scim_token(h), "alice", ALICE)
    [link] = inbox.links_to(ALICE)
    # A change that sent no link (straight into the store, as a store import would) leaves
    # the old link live: its address is checked when it is used.
    stored = h.run(h.store.get_user(user["id"]))
    h.run(h.store.replace_user(msgspec.structs.replace(
        stored, emails=(Email(value="other@example.test", primary=True),))))

    refused = use_link(h, link)

    assert refused.status_code == 409
    assert "no longer your account's email address" in refused.text
    assert h.run(h.store.get_credentials(user["id"])).verified_email is None


def test_resending_is_throttled_per_user(h: Harness, mailer: RecordingMailer) -> None:
    inbox = RecordingInbox(mailer)
    scim_create_user(h, scim_token(h), "alice", ALICE)
    email_verified_claims(h, "alice")
    assert account_form(account_page(h), "/account/email/resend") is not None
    for _ in range(USER_SENDS.limit):
        _done(resend(h), "verification_sent")

    throttled = resend(h)

    assert throttled.status_code == 429
    retry_after = int(throttled.headers["retry-after"])
    assert 0 < retry_after <= USER_SENDS.window_seconds
    assert "Try again in" in throttled.text and "minute" in throttled.text
    links = inbox.links_to(ALICE)
    assert len(links) == 1 + USER_SENDS.limit  # the SCIM one and the resent ones
    # An address change would mail someone too: it is refused as well, nothing changed.
    assert change_email(h, "victim@example.test").status_code == 429
    assert inbox.links_to("victim@example.test") == []
    assert f"{ALICE} (not verified)" in account_page(h).text

    h.clock.advance(retry_after)
    _done(resend(h), "verification_sent")
    links = inbox.links_to(ALICE)
    assert use_link(h, links[-2]).status_code == 400
    assert use_link(h, links[-1]).status_code == 200
    _done(resend(h), "email_verified")
    assert account_form(account_page(h), "/account/email/resend") is None


def test_changing_the_address_needs_a_recent_sign_in_and_a_valid_address(
    h: Harness, mailer: RecordingMailer
) -> None:
    scim_create_user(h, scim_token(h), "alice", ALICE)
    email_verified_claims(h, "alice")
    for bad in ("not-an-address", "alice@example.test\r\nBcc: x@example.test", "a@b"):
        refused = change_email(h, bad)
        assert refused.status_code == 400 and "nothing was changed" in refused.text
    _done(change_email(h, ALICE), "email_unchanged")
    assert len(mailer.sent) == 1

    h.clock.advance(h.services.settings.mfa_recent_auth_seconds + 1)
    page = account_page(h)
    assert account_form(page, "/account/email") is None
    assert 'id="reauth-notice"' in page.text
    _done(change_email(h, "new@example.test"), "email_reauthenticate")
    assert f"{ALICE} (not verified)" in account_page(h).text
    assert len(mailer.sent) == 1


def test_a_bulk_provisioning_mails_each_new_user(h: Harness, mailer: RecordingMailer) -> None:
    inbox = RecordingInbox(mailer)
    statuses = scim_bulk_create(h, scim_token(h), [("bob", "bob@example.test"),
                                                   ("carol", "carol@example.test")])
    assert statuses == ["201", "201"]
    assert len(inbox.links_to("bob@example.test")) == 1
    assert len(inbox.links_to("carol@example.test")) == 1


def test_provisioning_may_be_told_not_to_mail(tmp_path: Path) -> None:
    mailer = RecordingMailer()
    with harness(tmp_path, mailer=mailer, EMAIL_VERIFICATION_ON_PROVISION="0",
                 **PROVISIONING_ENV) as h:
        scim_create_user(h, scim_token(h), "alice", ALICE)
        assert mailer.sent == []
        # The user asks for the link themselves.
        email_verified_claims(h, "alice")
        _done(resend(h), "verification_sent")
        assert len(RecordingInbox(mailer).links_to(ALICE)) == 1


def test_without_a_mail_server_nothing_is_sent_and_the_page_says_so(tmp_path: Path) -> None:
    with harness(tmp_path, **PROVISIONING_ENV) as h:
        scim_create_user(h, scim_token(h), "alice", ALICE)
        assert email_verified_claims(h, "alice")[:2] == (False, False)
        page = account_page(h)
        assert "Email verification is unavailable" in page.text
        assert account_form(page, "/account/email/resend") is None
        assert h.run(h.store.export_account_tokens(None, 10, h.clock.now())).records == ()


@pytest.mark.parametrize("query", ["", "?token=", "?token=" + "x" * 200])
def test_a_link_page_without_a_usable_token_says_so(h: Harness, query: str) -> None:
    page = h.client.get("/account/verify-email" + query)
    assert page.status_code == 400 and "does not work" in page.text
    for token in ("", "ev_unknown-token-value-0123456789", "\x00"):
        answer = h.client.post("/account/verify-email", data={"token": token})
        assert answer.status_code == 400 and "does not work" in answer.text
