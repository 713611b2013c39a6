"""Test doubles shared by the suites: a clock the test moves, an event recorder and a
mailer that records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from ports.events import FieldValue
from ports.mail import MailTemplate

T0 = 1_700_000_000


class FakeClock:
    """A ``ports.clock.Clock`` that stands still until the test moves it."""

    def __init__(self, now: int = T0) -> None:
        self.value = now

    def now(self) -> int:
        return self.value

    def advance(self, seconds: int) -> None:
        self.value += seconds


@dataclass
class RecordingEvents:
    """A ``ports.events.Events`` that keeps every event for assertions."""

    events: list[tuple[str, dict[str, FieldValue]]] = field(default_factory=list)

    def emit(self, name: str, **fields: FieldValue) -> None:
        self.events.append((name, fields))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def named(self, name: str) -> list[dict[str, FieldValue]]:
        return [fields for event, fields in self.events if event == name]


class SentMail(msgspec.Struct, frozen=True):
    """One message a :class:`RecordingMailer` was asked to send."""

    template: str
    to: str
    user_id: str
    values: dict[str, str]


class RecordingMailer:
    """A ``ports.mail.Mailer`` that keeps what it was asked to send (the e2e tests with a
    real SMTP server use ``tests/services/smtp.py`` instead)."""

    def __init__(self) -> None:
        self.sent: list[SentMail] = []

    def send(
        self, template: MailTemplate, *, to: str, user_id: str, values: Mapping[str, str]
    ) -> None:
        self.sent.append(SentMail(template, to, user_id, dict(values)))
