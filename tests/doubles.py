"""Test doubles shared by the suites: a clock the test moves and an event recorder."""

from __future__ import annotations

from dataclasses import dataclass, field

from ports.events import FieldValue

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
