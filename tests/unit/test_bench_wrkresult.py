"""The parser of wrk output used by bench/run.py."""

from __future__ import annotations

import pytest

from bench.wrkresult import WrkOutputError, parse_wrk_output

SAMPLE = """Running 5s test @ http://127.0.0.1:18090/bare
  2 threads and 32 connections
Requests/sec:   1224.20
BENCH_RESULT {"requests": 6000, "duration_us": 2000000, "bytes": 1821788, "p50_us": 2427, \
"p90_us": 7791, "p99_us": 9380, "p999_us": 44616, "max_us": 44902, "mean_us": 4307.2, \
"connect_errors": 1, "read_errors": 2, "write_errors": 0, "status_errors": 3, "timeouts": 4}
"""


def test_reads_the_result_line() -> None:
    result = parse_wrk_output(SAMPLE)
    assert result.requests == 6000
    assert result.rps == 3000.0
    assert result.p50_us == 2427
    assert result.p99_us == 9380
    assert result.errors == 10


def test_the_last_result_line_wins() -> None:
    later = SAMPLE.replace('"requests": 6000', '"requests": 8000')
    assert parse_wrk_output(SAMPLE + later).requests == 8000


def test_no_result_line_is_an_error() -> None:
    with pytest.raises(WrkOutputError, match="no BENCH_RESULT"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_a_malformed_result_line_is_an_error() -> None:
    with pytest.raises(WrkOutputError, match="malformed"):
        parse_wrk_output('BENCH_RESULT {"requests": "many"}\n')
