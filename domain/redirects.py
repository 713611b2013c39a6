"""Whether a redirect URI in a request is one the client registered.

Exact string comparison (RFC 9700 section 4.1.3, OAuth 2.1 section 2.3.1): no prefix,
suffix, case, percent-encoding or trailing-slash games, with one exception. A native app
receives its redirect on a loopback port the operating system gives it at run time, so a
*loopback IP literal* URI registered without a port (``http://127.0.0.1/cb``,
``http://[::1]/cb``) matches the same URI with any port (RFC 8252 section 7.3, OAuth 2.1
section 8.4.2). Everything but the port must still be the very same text; a URI
registered with a port matches only that port.

``localhost`` is not a loopback IP literal here: RFC 8252 section 8.3 advises against it
(the name may resolve elsewhere, and a firewall may treat it differently), so
``http://localhost/cb`` is compared exactly, like any other URI.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection

_HTTP = "http://"
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_MAX_PORT = 65535


def redirect_uri_registered(registered: Collection[str], requested: str) -> bool:
    """Whether ``requested`` is one of the ``registered`` redirect URIs (module docstring)."""
    if requested in registered:
        return True
    return any(_loopback_any_port(uri, requested) for uri in registered)


def _portless_loopback(uri: str) -> str | None:
    """``http://`` plus the host of ``uri`` when it is an http URI on a loopback IP literal
    with no port (where any port matches); None for every other URI."""
    if not uri.startswith(_HTTP):
        return None
    rest = uri[len(_HTTP):]
    end = len(rest)
    for index, char in enumerate(rest):
        if char in "/?#":
            end = index
            break
    host = rest[:end]
    if host.startswith("["):
        if not host.endswith("]"):
            return None  # an IPv6 literal with a port after it, or malformed
        literal = host[1:-1]
        version = 6
    else:
        if ":" in host:
            return None  # a port is registered: only that one matches
        literal = host
        version = 4
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        return None  # a name (localhost included) or user info: exact comparison only
    if address.version != version or not address.is_loopback:
        return None
    return _HTTP + host


def _loopback_any_port(registered: str, requested: str) -> bool:
    prefix = _portless_loopback(registered)
    if prefix is None or not requested.startswith(prefix + ":"):
        return False
    port = _PORT.match(requested, len(prefix) + 1)
    # 1 to 65535 in plain digits, as an operating system writes it: no sign, no leading 0.
    if port is None or int(port.group()) > _MAX_PORT:
        return False
    return prefix + requested[port.end():] == registered
