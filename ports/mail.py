"""The mail port: the messages auth-service sends to people (password reset, email
verification).

The use cases name a message by its template and give the values to fill in; a
:class:`Mailer` renders it and delivers it in the background: ``send`` returns at once and
never fails or delays the caller's request, whatever the mail server does (delivery is
retried a bounded number of times, and each outcome is a security event). With no mail
server configured (``SMTP_URL`` unset) there is no mailer, and the features that need one
are off (``Services.mailer`` is None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

#: The messages there are templates for.
MailTemplate = Literal["password_reset", "email_verification"]


class Mailer(Protocol):
    def send(
        self, template: MailTemplate, *, to: str, user_id: str, values: Mapping[str, str]
    ) -> None:
        """Render ``template`` with ``values`` and deliver it to ``to`` in the background;
        return at once. ``user_id`` is for the delivery's log line only."""
        ...
