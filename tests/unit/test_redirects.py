"""Redirect URI matching: exact strings, except the port of a port-less loopback IP literal
(RFC 8252 section 7.3); and the redirect built from a registered URI of any scheme."""

from __future__ import annotations

import pytest

from domain.authorization_request import redirect_location
from domain.redirects import redirect_uri_registered

V4 = "http://127.0.0.1/cb"
V6 = "http://[::1]/cb"


@pytest.mark.parametrize("requested", [
    "http://127.0.0.1:1/cb",
    "http://127.0.0.1:51234/cb",
    "http://127.0.0.1:65535/cb",
    "http://127.0.0.1/cb",
])
def test_a_portless_ipv4_loopback_uri_matches_any_port(requested: str) -> None:
    assert redirect_uri_registered([V4], requested)


@pytest.mark.parametrize("requested", ["http://[::1]:8765/cb", "http://[::1]/cb"])
def test_a_portless_ipv6_loopback_uri_matches_any_port(requested: str) -> None:
    assert redirect_uri_registered([V6], requested)


def test_other_loopback_addresses_of_the_block_are_loopback_too() -> None:
    assert redirect_uri_registered(["http://127.0.0.2/cb"], "http://127.0.0.2:4000/cb")


@pytest.mark.parametrize("requested", [
    "http://127.0.0.1:51234/cb/",          # another path
    "http://127.0.0.1:51234/CB",           # case of the path
    "http://127.0.0.1:51234/cb?x=1",       # a query the registration does not have
    "http://127.0.0.1:51234/cb#frag",
    "http://127.0.0.1:51234",              # no path
    "http://127.0.0.1:/cb",                # empty port
    "http://127.0.0.1:0/cb",               # port 0 is no port
    "http://127.0.0.1:065535/cb",          # a leading zero: normalisation games
    "http://127.0.0.1:65536/cb",           # out of range
    "http://127.0.0.1:+80/cb",
    "http://127.0.0.1:80:81/cb",
    "http://127.0.0.1:80@evil.example/cb",  # user info that names another host
    "https://127.0.0.1:51234/cb",          # another scheme
    "HTTP://127.0.0.1:51234/cb",
    "http://127.0.0.2:51234/cb",           # another loopback address
    "http://[::1]:51234/cb",               # the other IP version
    "http://localhost:51234/cb",
    "http://127.0.0.1.evil.example:51234/cb",
])
def test_everything_but_the_port_must_be_the_registered_text(requested: str) -> None:
    assert not redirect_uri_registered([V4], requested)


def test_a_registered_query_must_be_repeated_exactly() -> None:
    registered = "http://127.0.0.1/cb?app=1"
    assert redirect_uri_registered([registered], "http://127.0.0.1:7000/cb?app=1")
    assert not redirect_uri_registered([registered], "http://127.0.0.1:7000/cb?app=2")
    assert not redirect_uri_registered([registered], "http://127.0.0.1:7000/cb")


def test_a_loopback_uri_registered_with_a_port_matches_only_that_port() -> None:
    for registered in ("http://127.0.0.1:8080/cb", "http://[::1]:8080/cb"):
        assert redirect_uri_registered([registered], registered)
        assert not redirect_uri_registered([registered], registered.replace("8080", "8081"))
        assert not redirect_uri_registered([registered], registered.replace(":8080", ""))


@pytest.mark.parametrize("registered", [
    "http://localhost/cb",              # a name, not an IP literal (RFC 8252 section 8.3)
    "https://app.example/cb",
    "http://app.example/cb",
    "https://127.0.0.1/cb",             # the rule is for http loopback redirects
    "http://10.0.0.1/cb",
    "http://[2001:db8::1]/cb",
])
def test_no_other_uri_ever_matches_another_port(registered: str) -> None:
    scheme, rest = registered.split("://")
    host, _, path = rest.partition("/")
    with_port = f"{scheme}://{host}:4444/{path}"
    assert redirect_uri_registered([registered], registered)
    assert not redirect_uri_registered([registered], with_port)


@pytest.mark.parametrize("registered", ["https://app.example:8443/cb", "http://localhost:3000/cb"])
def test_a_non_loopback_uri_with_a_port_is_exact(registered: str) -> None:
    assert redirect_uri_registered([registered], registered)
    assert not redirect_uri_registered([registered], registered.replace(":8443", "").replace(
        ":3000", ""))
    assert not redirect_uri_registered([registered], registered.replace("8443", "8444").replace(
        "3000", "3001"))


def test_exact_comparison_plays_no_normalisation_games() -> None:
    registered = ["https://app.example/cb"]
    for near_miss in ("https://app.example/cb/", "https://APP.example/cb",
                      "https://app.example/c%62", "https://app.example:443/cb",
                      "https://app.example/cb?", "https://app.example/cb/../cb"):
        assert not redirect_uri_registered(registered, near_miss)


def test_private_use_scheme_uris_are_compared_exactly() -> None:
    registered = ["com.example.app:/oauth2redirect"]
    assert redirect_uri_registered(registered, "com.example.app:/oauth2redirect")
    assert not redirect_uri_registered(registered, "com.example.app://oauth2redirect")
    assert not redirect_uri_registered(registered, "com.example.evil:/oauth2redirect")


def test_any_of_several_registered_uris_matches() -> None:
    registered = ["https://app.example/cb", V4]
    assert redirect_uri_registered(registered, "http://127.0.0.1:3000/cb")
    assert redirect_uri_registered(registered, "https://app.example/cb")
    assert not redirect_uri_registered([], "https://app.example/cb")


@pytest.mark.parametrize(("registered", "expected"), [
    ("com.example.app:/cb", "com.example.app:/cb?code=ac_x&state=s"),
    ("com.example.app:cb", "com.example.app:cb?code=ac_x&state=s"),
    ("com.example.app://cb/path", "com.example.app://cb/path?code=ac_x&state=s"),
    ("http://127.0.0.1:49152/cb", "http://127.0.0.1:49152/cb?code=ac_x&state=s"),
    ("http://[::1]:49152/cb", "http://[::1]:49152/cb?code=ac_x&state=s"),
    ("https://a.example/cb?", "https://a.example/cb?code=ac_x&state=s"),
    ("https://a.example/cb?t=1", "https://a.example/cb?t=1&code=ac_x&state=s"),
])
def test_the_redirect_extends_the_uri_as_registered(registered: str, expected: str) -> None:
    assert redirect_location(registered, {"code": "ac_x", "state": "s", "none": None}) \
        == expected
