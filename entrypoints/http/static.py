"""``GET /static/passkeys.js``: the one script this server's pages run.

WebAuthn is a browser API, so passkeys need a script; it is served from this origin (the
pages that use it allow ``script-src 'self'`` and nothing else: no inline script, no other
origin), read once from the package (``entrypoints/static/passkeys.js``).
"""

from __future__ import annotations

from importlib.resources import files

from litestar import Response, get

PATH = "/static/passkeys.js"
_SCRIPT = files("entrypoints").joinpath("static/passkeys.js").read_bytes()


@get(PATH, operation_id="passkeysScript", include_in_schema=False, sync_to_thread=False)
def passkeys_script() -> Response[bytes]:
    """The passkey script of the sign-in and account pages."""
    # no-cache: revalidated on each load, so an upgrade's script is never mixed with an
    # older page (the pages themselves are no-store).
    # Litestar adds the charset to a text/* type itself.
    return Response(_SCRIPT, media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
