"""wrk's output, as printed by ``bench/wrk/request.lua``'s ``done()``: one JSON line."""

from __future__ import annotations

import msgspec

RESULT_PREFIX = "BENCH_RESULT "


class WrkResult(msgspec.Struct, frozen=True, kw_only=True):
    """One wrk run. Latencies in microseconds, duration in microseconds."""

    requests: int
    duration_us: int
    bytes: int
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int
    max_us: int
    mean_us: float
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    status_errors: int = 0
    timeouts: int = 0

    @property
    def rps(self) -> float:
        """Requests per second over the run."""
        return self.requests / (self.duration_us / 1_000_000) if self.duration_us else 0.0

    @property
    def errors(self) -> int:
        """Every failed request: socket errors, timeouts and non-2xx/3xx answers."""
        return (
            self.connect_errors + self.read_errors + self.write_errors
            + self.status_errors + self.timeouts
        )


class WrkOutputError(Exception):
    """wrk printed no result line (it failed, or the script was not ours)."""


def parse_wrk_output(text: str) -> WrkResult:
    """The result of the last ``BENCH_RESULT`` line in wrk's stdout."""
    lines = [line for line in text.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise WrkOutputError(f"no {RESULT_PREFIX.strip()} line in wrk output: {text[-300:]!r}")
    try:
        return msgspec.json.decode(lines[-1][len(RESULT_PREFIX):], type=WrkResult)
    except msgspec.DecodeError as exc:
        raise WrkOutputError(f"malformed result line: {lines[-1]!r}") from exc
