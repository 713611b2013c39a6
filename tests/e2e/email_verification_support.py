"""Drivers for the email verification e2e tests (tests/e2e/test_email_verification.py):
provisioning over SCIM, the mailed link followed like a browser, the ``/account`` email
forms, and the ``email_verified`` claims of a sign-in.

The mail comes from an :class:`Inbox`: :class:`RecordingInbox` reads a
``tests.doubles.RecordingMailer``; a test with a real SMTP server implements ``links_to``
over the messages it received, and every driver here works the same with it.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.doubles import RecordingMailer
from tests.e2e.signin_flow import (
    PASSWORD,
    Form,
    Harness,
    auth_params,
    exchange,
    pkce_pair,
    redirect_params,
    sign_in,
    submit,
)

PROVISIONER = "provisioner"
PROVISIONER_SECRET = "provisioner-secret-" + "p" * 32
#: The harness environment for :func:`scim_token`: a provisioning client, and the service
#: scopes among the allowed ones.
PROVISIONING_ENV = {
    "CLIENT_CREDENTIALS": f"{PROVISIONER}:{PROVISIONER_SECRET}",
    "ALLOWED_SCOPES": "openid,profile,email,offline_access,read,write,mfa,scim:read,scim:write",
}
SCIM_JSON = {"Content-Type": "application/scim+json"}
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Inbox(Protocol):
    def links_to(self, address: str) -> list[str]:
        """The verification links mailed to ``address`` so far, oldest first."""
        ...


class RecordingInbox:
    """The links a :class:`~tests.doubles.RecordingMailer` was asked to send."""

    def __init__(self, mailer: RecordingMailer) -> None:
        self.mailer = mailer

    def links_to(self, address: str) -> list[str]:
        return [m.values["link"] for m in self.mailer.sent
                if m.template == "email_verification" and m.to == address]


# Provisioning


def scim_token(h: Harness) -> str:
    """A ``scim:write`` access token of the provisioning client (client_credentials)."""
    response = h.client.post("/oauth/token", auth=(PROVISIONER, PROVISIONER_SECRET),
                             data={"grant_type": "client_credentials", "scope": "scim:write"})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _scim(token: str) -> dict[str, str]:
    return {**SCIM_JSON, "Authorization": f"Bearer {token}"}


def scim_create_user(h: Harness, token: str, user_name: str, email: str | None, *,
                     password: str = PASSWORD) -> dict[str, Any]:
    """POST /scim/v2/Users: an active user with a password and (primary) ``email``."""
    body: dict[str, Any] = {"userName": user_name, "password": password,
                            "displayName": user_name.title()}
    if email is not None:
        body["emails"] = [{"value": email, "type": "work", "primary": True}]
    response = h.client.post("/scim/v2/Users", json=body, headers=_scim(token))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def scim_set_email(h: Harness, token: str, user_id: str, email: str) -> httpx.Response:
    """PATCH the user's emails to the one primary ``email``."""
    return h.client.patch(f"/scim/v2/Users/{user_id}", headers=_scim(token), json={
        "schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "emails", "value": [{"value": email, "primary": True}]}]})


def scim_bulk_create(h: Harness, token: str, users: list[tuple[str, str]]) -> list[str]:
    """POST /scim/v2/Bulk creating each ``(userName, email)``; the operations' statuses."""
    response = h.client.post("/scim/v2/Bulk", headers=_scim(token), json={
        "schemas": [BULK_REQUEST], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}",
             "data": {"userName": name, "emails": [{"value": email, "primary": True}]}}
            for i, (name, email) in enumerate(users)]})
    assert response.status_code == 200, response.text
    return [op["status"] for op in response.json()["Operations"]]


# The link


def open_link(h: Harness, link: str) -> httpx.Response:
    """GET the link as a mail client (or a scanner) would."""
    return h.client.get(link, follow_redirects=False)


def use_link(h: Harness, link: str) -> httpx.Response:
    """Open the link and press its button; the answer to the button."""
    page = open_link(h, link)
    assert page.status_code == 200, page.text
    return submit(h.client, page)


# Sign-in and claims


def signed_in_tokens(h: Harness, user_name: str, *, password: str = PASSWORD,
                     scope: str = "openid email") -> dict[str, Any]:
    """Sign ``user_name`` in through the pages (the browser keeps its session) and exchange
    the code; the token response."""
    verifier, challenge = pkce_pair()
    response = sign_in(h, auth_params(code_challenge=challenge, scope=scope),
                       username=user_name, password=password)
    token = exchange(h, redirect_params(response)["code"], verifier)
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


def id_token_claims(h: Harness, id_token: str) -> dict[str, Any]:
    """The ID token's claims, its signature checked against the server's JWKS."""
    keys = KeySet.import_key_set(h.client.get("/jwks.json").json())
    claims: dict[str, Any] = jwt.decode(id_token, keys, algorithms=["RS256"]).claims
    return claims


def userinfo(h: Harness, access_token: str) -> dict[str, Any]:
    response = h.client.get("/oauth/userinfo",
                            headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def email_verified_claims(h: Harness, user_name: str) -> tuple[Any, Any, dict[str, Any]]:
    """A fresh sign-in's ``email_verified`` in the ID token and at userinfo, and the token
    response (for later userinfo calls)."""
    tokens = signed_in_tokens(h, user_name)
    claims = id_token_claims(h, tokens["id_token"])
    return claims.get("email_verified"), userinfo(h, tokens["access_token"]).get(
        "email_verified"), tokens


# /account


def account_page(h: Harness, done: str | None = None) -> httpx.Response:
    """``/account`` (with the status message of ``done``)."""
    page = h.client.get("/account", params={"done": done} if done else None)
    assert page.status_code == 200, page.text
    return page


def account_form(page: httpx.Response, action: str) -> Form | None:
    """The page's form that posts to ``action``, or None when the page shows none."""
    for index in range(page.text.count("<form")):
        form = Form(page.text, index)
        if form.action == action:
            return form
    return None


def post_account(h: Harness, action: str, **values: str) -> httpx.Response:
    """POST ``values`` to ``action`` with the page's CSRF token, as its form would (also
    when the page does not show that form)."""
    signout = account_form(account_page(h), "/account/signout")
    assert signout is not None, "not signed in"
    return h.client.post(action, data={"csrf_token": signout.fields["csrf_token"], **values},
                         follow_redirects=False)


def change_email(h: Harness, address: str) -> httpx.Response:
    return post_account(h, "/account/email", email=address)


def resend(h: Harness) -> httpx.Response:
    return post_account(h, "/account/email/resend")
