"""Which URLs the server may call (domain.outbound.OutboundPolicy)."""

from __future__ import annotations

import pytest

from domain.outbound import OutboundPolicy

STRICT = OutboundPolicy()
LOOPBACK = OutboundPolicy(allow_loopback=True)


@pytest.mark.parametrize("url", ["https://client.example/jwks.json",
                                 "https://client.example:8443/keys", "https://8.8.8.8/k"])
def test_public_https_urls_are_allowed(url: str) -> None:
    assert STRICT.refusal(url) is None
    assert LOOPBACK.refusal(url) is None


@pytest.mark.parametrize(("url", "reason"), [
    ("http://client.example/jwks.json", "must use https"),
    ("http://127.0.0.1:8000/jwks.json", "must use https"),
    ("https://localhost/jwks.json", "loopback host"),
    ("https://[::1]/jwks.json", "loopback host"),
    ("https://10.0.0.1/jwks.json", "private"),
    ("https://169.254.169.254/latest", "link-local"),
    ("https://[::ffff:192.168.1.1]/k", "private"),
    ("https://user@client.example/k", "user information"),
    ("ftp://client.example/k", "absolute https URL"),
    ("/jwks.json", "absolute https URL"),
    ("https://client.example:99999/k", "not a valid URL"),
])
def test_strict_refusals(url: str, reason: str) -> None:
    refusal = STRICT.refusal(url)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/jwks.json", "http://localhost/k",
                                 "http://[::1]:9/k", "https://127.0.0.2/k"])
def test_loopback_is_allowed_only_with_the_setting(url: str) -> None:
    assert STRICT.refusal(url) is not None
    assert LOOPBACK.refusal(url) is None


@pytest.mark.parametrize("url", ["http://client.example/k", "http://10.0.0.1/k"])
def test_the_setting_allows_nothing_but_loopback(url: str) -> None:
    assert LOOPBACK.refusal(url) is not None
