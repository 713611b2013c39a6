"""Email verification through a real SMTP server (aiosmtpd, tests/services/smtp.py): the
mail the app sends over ``SMTP_URL`` carries the link, and following it flips
``email_verified`` in the ID token and at userinfo, on memory and sql.

The drivers are tests/e2e/email_verification_support.py's; :class:`SmtpInbox` reads the
links out of the messages the server received.
"""

from __future__ import annotations

import re
from pathlib import Path

from adapters.smtp_mail import SmtpMailer
from tests.e2e.conftest import StoreBackend
from tests.e2e.email_verification_support import (
    PROVISIONING_ENV,
    account_page,
    change_email,
    email_verified_claims,
    scim_create_user,
    scim_token,
    use_link,
)
from tests.e2e.signin_flow import Harness, harness
from tests.services.smtp import LocalSmtp

SENDER = "accounts@auth.test"
_LINK = re.compile(r"(http://auth\.test/account/verify-email\?token=[A-Za-z0-9_\-]+)")


class SmtpInbox:
    """The verification links the SMTP server received for an address, oldest first, once
    the app's mail under way is delivered."""

    def __init__(self, h: Harness, server: LocalSmtp) -> None:
        self.h = h
        self.server = server

    def links_to(self, address: str) -> list[str]:
        mailer = self.h.services.mailer
        assert isinstance(mailer, SmtpMailer)
        self.h.run(mailer.drain(10))
        links = []
        for mail in self.server.received:
            if mail.rcpt_tos == [address] and (found := _LINK.search(mail.text)):
                assert mail.message["From"] == SENDER
                links.append(found.group(1))
        return links


def test_a_mailed_link_flips_email_verified(
    tmp_path: Path, store: StoreBackend, smtp_server: LocalSmtp
) -> None:
    env = {**PROVISIONING_ENV, "SMTP_URL": smtp_server.url, "SMTP_FROM": SENDER}
    with harness(tmp_path, backend=store, **env) as h:
        inbox = SmtpInbox(h, smtp_server)
        scim_create_user(h, scim_token(h), "alice", "alice@example.test")
        [link] = inbox.links_to("alice@example.test")
        assert email_verified_claims(h, "alice")[:2] == (False, False)

        assert use_link(h, link).status_code == 200
        assert email_verified_claims(h, "alice")[:2] == (True, True)

        # A new address is unverified at once; its own mailed link verifies it.
        assert change_email(h, "alice.new@example.test").status_code == 303
        assert email_verified_claims(h, "alice")[:2] == (False, False)
        [new_link] = inbox.links_to("alice.new@example.test")
        assert use_link(h, new_link).status_code == 200
        assert email_verified_claims(h, "alice")[:2] == (True, True)
        assert "verified)" in account_page(h).text
