"""The consent page: a client that is not ``first_party`` asks the user before it gets a code.

The page lists the scopes the user has not allowed the client yet (all of them with
``prompt=consent``; reusing the sign-in pages' scope descriptions), and says who is signed
in, with a button to sign in as someone else. Its form posts to ``/oauth/authorize`` as a
sign-in step does, with a transaction (step ``consent``) bound to the session that showed
it: a decision counts only in that session.
"""

from __future__ import annotations

from litestar import Response

from domain.clients import Client
from entrypoints.http.html import page
from entrypoints.http.services import Services
from entrypoints.http.signin_steps import (
    Transaction,
    form_action,
    scope_list,
    transaction_cookie,
)

#: The buttons of the consent page (the ``action`` field).
ALLOW = "allow"
DENY = "deny"
SWITCH_USER = "switch_user"


def consent_page(
    services: Services, client: Client, transaction: Transaction, *, user_name: str,
    allowed_before: tuple[str, ...] = (),
) -> Response[str]:
    """The consent page for ``transaction.scopes``, setting the transaction's cookie."""
    assert transaction.request is not None
    response = page(
        "consent.html", form_target=transaction.request.redirect_uri,
        action=form_action(transaction), client_name=client.name,
        scopes=scope_list(transaction.scopes), allowed_before=scope_list(allowed_before),
        csrf_token=transaction.csrf, user_name=user_name,
    )
    response.set_cookie(transaction_cookie(services, transaction))
    return response
