"""Write a demo clients file for local use (``make run``) once, and print the demo client.

The secret is random (256 bits) and stays in the file, so the README's curl examples keep
working across restarts: ``SECRET=$(sed -n 's/^secret = "\\(.*\\)"/\\1/p' .demo/clients.toml)``.
Never use this file in production.
"""

from __future__ import annotations

import secrets
import sys
import tomllib
from pathlib import Path

TEMPLATE = """# Demo client for local use, written by `make run`. Not for production.
[[clients]]
client_id = "demo"
name = "Demo application"
secret = "{secret}"
token_endpoint_auth_method = "client_secret_basic"
grant_types = ["authorization_code", "client_credentials", "refresh_token"]
scopes = ["openid", "profile", "email", "offline_access", "mfa", "read", "write",
          "scim:read", "scim:write"]
redirect_uris = ["http://localhost:9000/callback"]
"""


def main(path_text: str) -> None:
    path = Path(path_text)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TEMPLATE.format(secret=secrets.token_urlsafe(32)))
        path.chmod(0o600)
    client = tomllib.loads(path.read_text())["clients"][0]
    print(f"Demo client (from {path}): client_id={client['client_id']} secret={client['secret']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".demo/clients.toml")
