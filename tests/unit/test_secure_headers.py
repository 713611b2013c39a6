"""``secure_headers``: what the edge middleware adds to every response's headers."""

from __future__ import annotations

from entrypoints.middleware import secure_headers

STRICT = b"default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def _as_dict(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    names = [name for name, _ in headers]
    assert len(names) == len(set(names)), names  # nothing doubled
    return dict(headers)


def test_an_html_response_without_a_policy_gets_the_strict_one() -> None:
    # E.g. a framework's own HTML page: nothing may load or run on it.
    headers = _as_dict(secure_headers([(b"content-type", b"text/html; charset=utf-8")]))
    assert headers[b"content-security-policy"] == STRICT
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"no-referrer"


def test_a_page_policy_is_kept_and_only_gains_frame_ancestors() -> None:
    own = b"default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'"
    headers = _as_dict(secure_headers([(b"content-type", b"text/html"),
                                       (b"content-security-policy", own)]))
    assert headers[b"content-security-policy"] == own + b"; frame-ancestors 'none'"


def test_json_gets_the_strict_policy_and_no_frame_options() -> None:
    headers = _as_dict(secure_headers([(b"content-type", b"application/json")]))
    assert headers[b"content-security-policy"] == STRICT
    assert b"x-frame-options" not in headers


def test_hsts_only_when_asked_and_never_twice() -> None:
    assert b"strict-transport-security" not in _as_dict(secure_headers([]))
    headers = _as_dict(secure_headers([], hsts=True))
    assert headers[b"strict-transport-security"] == b"max-age=31536000"
    own = (b"strict-transport-security", b"max-age=60")
    assert _as_dict(secure_headers([own], hsts=True))[b"strict-transport-security"] == b"max-age=60"
