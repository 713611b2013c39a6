"""The mail to users: which server (``SMTP_URL``, ``SMTP_FROM``) and what the messages say.

Each message is a plain-text Jinja template in ``entrypoints/templates/mail/`` named after
its ``ports.mail.MailTemplate`` (``password_reset.txt``, ``email_verification.txt``), filled
with the use case's values (``name``, ``link``, ``expires``); a value a template needs and
was not given is an error, not an empty string. Plain text is not escaped (there is no
markup to break); the subject lines are fixed here, so no value reaches a header.

Without ``SMTP_URL`` there is no mailer (:func:`load_mailer` returns None) and the features
that need one are off; the start-up log says which it is (:func:`log_mail_status`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from adapters.smtp_mail import RenderedMail, SmtpMailer, parse_smtp_url
from entrypoints.settings import Settings
from ports.clock import Clock
from ports.events import Events
from ports.mail import MailTemplate

log = logging.getLogger("auth_service.mail")

SUBJECTS: dict[MailTemplate, str] = {
    "password_reset": "Reset your password",
    "email_verification": "Confirm your email address",
}


class TemplateRenderer:
    """Renders ``templates/mail/<template>.txt`` (an ``adapters.smtp_mail.Renderer``)."""

    def __init__(self) -> None:
        self._templates = Environment(
            loader=PackageLoader("entrypoints", "templates/mail"),
            autoescape=select_autoescape(enabled_extensions=("html",),
                                         default_for_string=False),
            undefined=StrictUndefined, keep_trailing_newline=True, auto_reload=False)

    def __call__(self, template: MailTemplate, values: Mapping[str, str]) -> RenderedMail:
        body = self._templates.get_template(f"{template}.txt").render(**values)
        return RenderedMail(subject=SUBJECTS[template], body=body)


def load_mailer(settings: Settings, events: Events, clock: Clock) -> SmtpMailer | None:
    """The SMTP mailer of ``SMTP_URL`` and ``SMTP_FROM``, or None without ``SMTP_URL``."""
    if settings.smtp_url is None or settings.smtp_from is None:
        return None
    return SmtpMailer(parse_smtp_url(settings.smtp_url), settings.smtp_from,
                      TemplateRenderer(), events, clock,
                      helo_name=urlsplit(settings.external_base_url).hostname or "localhost")


def mail_status(settings: Settings) -> str:
    """One line saying whether mail is on, and so password reset and email verification."""
    if settings.smtp_url is None:
        return ("mail is off (SMTP_URL is unset): no password reset and no email "
                "verification")
    server = parse_smtp_url(settings.smtp_url)
    return (f"mail is on: {server.describe()} from {settings.smtp_from}; password reset "
            "and email verification are available")


def log_mail_status(settings: Settings) -> None:
    """Say at start-up whether mail is on."""
    log.info(mail_status(settings))
