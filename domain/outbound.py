"""Which URLs the server itself may call (a client's ``jwks_uri``, later its
``backchannel_logout_uri``): one policy for every outbound request.

Those URLs come from client metadata, which dynamic registration lets strangers write, so
an outbound request is a way into the server's own network (SSRF). The rule:

- ``https`` only, to a host name or a public address. Literal loopback, private,
  link-local (cloud metadata at 169.254.169.254), multicast, reserved and unspecified
  addresses are refused, and so is a URL with user information (``https://a@b``), which
  hides the real host from a reader.
- ``OUTBOUND_ALLOW_LOOPBACK=1`` (development and tests) also allows ``http`` and ``https``
  to a loopback host (``localhost``, ``127.0.0.0/8``, ``::1``), and nothing else.

A host *name* that resolves to a private address is not caught here (the adapter connects
by name); a deployment that needs that guarantee filters egress in its network.
Redirects are checked against the same policy, hop by hop, by the fetching adapter.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import msgspec


class OutboundPolicy(msgspec.Struct, frozen=True, kw_only=True):
    #: ``OUTBOUND_ALLOW_LOOPBACK``: allow http(s) to loopback hosts (development, tests).
    allow_loopback: bool = False

    def refusal(self, url: str) -> str | None:
        """Why the server must not call ``url``; None when it may."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            return "it is not a valid URL"
        if not host or parts.scheme not in ("http", "https"):
            return "it must be an absolute https URL"
        if parts.username is not None or parts.password is not None:
            return "it must not carry user information"
        loopback = _is_loopback(host)
        if loopback and self.allow_loopback:
            return None
        if parts.scheme != "https":
            return "it must use https" + (
                "" if self.allow_loopback else
                " (http is allowed only to loopback hosts, with OUTBOUND_ALLOW_LOOPBACK=1)")
        if loopback:
            return "it points to a loopback host (allowed only with OUTBOUND_ALLOW_LOOPBACK=1)"
        if _is_internal_address(host):
            return "it points to a private, link-local or reserved address"
        return None


def _is_loopback(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_internal_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: see the module docstring
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast
