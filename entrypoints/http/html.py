"""Server-rendered HTML pages: one Jinja environment, and the headers every page carries."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Response

#: No script may run, nothing may be framed, forms post only to us. Styles are inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# Only plain scheme/host/port survive into a CSP source expression: nothing that could end
# the directive (";", ",", spaces, quotes).
_CSP_SOURCE = re.compile(
    r"^[a-z][a-z0-9+.\-]*:(//([a-z0-9.\-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?)?$"
)


def form_action_source(redirect_uri: str) -> str | None:
    """The CSP source expression (origin, or scheme for a custom scheme) of ``redirect_uri``.

    Browsers apply ``form-action`` to the redirects that follow a form submission, so the
    sign-in pages must allow the client's redirect URI, or the final redirect is blocked.
    """
    parts = urlsplit(redirect_uri)
    host = parts.hostname or ""
    if parts.scheme in ("http", "https"):
        if not host:
            return None
        host = f"[{host}]" if ":" in host else host
        source = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    else:
        source = f"{parts.scheme}:"
    source = source.lower()
    return source if _CSP_SOURCE.match(source) else None


_templates = Environment(
    loader=PackageLoader("entrypoints", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)


def page(
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    *,
    form_target: str | None = None,
    scripts: bool = False,
    **context: Any,
) -> Response[str]:
    """Render ``template`` with ``context`` (autoescaped) as a page with the security headers.

    ``form_target`` (a validated redirect URI) is added to ``form-action``, as the page's
    form ends in a redirect there. ``scripts``: the page runs this server's own scripts
    (``script-src 'self'``: the passkey pages' ``/static/passkeys.js``; never an inline
    script, never another origin's); the template sees it as ``scripts``.
    """
    body = _templates.get_template(template).render(scripts=scripts, **context)
    all_headers = {**PAGE_HEADERS, **(headers or {})}
    policy = CONTENT_SECURITY_POLICY
    if scripts:
        policy = policy.replace("default-src 'none';", "default-src 'none'; script-src 'self';")
    source = form_action_source(form_target) if form_target else None
    if source is not None:
        policy = policy.replace("form-action 'self'", f"form-action 'self' {source}")
    if policy != CONTENT_SECURITY_POLICY:
        all_headers["Content-Security-Policy"] = policy
    return Response(body, status_code=status_code, media_type="text/html", headers=all_headers)
