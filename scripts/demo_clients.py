"""Write the demo clients file for local use (``make run``) once, and print the demo clients.

Two clients, one per kind of scope (docs/oauth.md, "Scope kinds"): ``demo``, a web
application that signs users in and gets user scopes only, and ``demo-provisioner``, a
service that gets the SCIM service scopes for itself through ``client_credentials``.
The secrets are random (256 bits) and stay in the file, so the README's curl examples keep
working across restarts: ``SECRET=$(python scripts/demo_clients.py --secret demo-provisioner)``.
A file written by an older version (one client offering ``scim:write`` to users) is
rewritten, keeping the ``demo`` secret. Never use this file in production.
"""

from __future__ import annotations

import argparse
import secrets
import tomllib
from pathlib import Path
from typing import Any

DEFAULT_PATH = ".demo/clients.toml"
PROVISIONER = "demo-provisioner"

TEMPLATE = """# Demo clients for local use, written by `make run`. Not for production.

# A web application: users sign in (authorization code with PKCE); user scopes only.
[[clients]]
client_id = "demo"
name = "Demo application"
secret = "{demo_secret}"
token_endpoint_auth_method = "client_secret_basic"
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email", "offline_access", "mfa", "read", "write"]
redirect_uris = ["http://localhost:9000/callback"]

# A provisioning service acting for itself: scim:read and scim:write are service scopes,
# granted only through client_credentials, never to a signed-in user.
[[clients]]
client_id = "{provisioner}"
name = "Demo provisioning service"
secret = "{provisioner_secret}"
token_endpoint_auth_method = "client_secret_basic"
grant_types = ["client_credentials"]
scopes = ["read", "write", "scim:read", "scim:write"]
"""


def _clients(path: Path) -> dict[str, dict[str, Any]]:
    return {c["client_id"]: c for c in tomllib.loads(path.read_text())["clients"]}


def ensure_file(path: Path) -> dict[str, dict[str, Any]]:
    """The demo clients in ``path``, writing the file first when missing or outdated."""
    demo_secret = secrets.token_urlsafe(32)
    if path.exists():
        clients = _clients(path)
        if PROVISIONER in clients:
            return clients
        old_secret = clients.get("demo", {}).get("secret")
        if isinstance(old_secret, str):
            demo_secret = old_secret
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE.format(demo_secret=demo_secret, provisioner=PROVISIONER,
                                    provisioner_secret=secrets.token_urlsafe(32)))
    path.chmod(0o600)
    return _clients(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write and show the demo clients file.")
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH)
    parser.add_argument("--secret", metavar="CLIENT_ID",
                        help="print only this client's secret (for shell scripts)")
    args = parser.parse_args(argv)
    path = Path(args.path)
    clients = ensure_file(path)
    if args.secret is not None:
        if args.secret not in clients:
            parser.error(f"no client {args.secret!r} in {path}")
        print(clients[args.secret]["secret"])
        return
    for client in clients.values():
        print(f"Demo client (from {path}): client_id={client['client_id']} "
              f"secret={client['secret']} grants={','.join(client['grant_types'])}")


if __name__ == "__main__":
    main()
