"""``SqlStore``: the ``Store`` port over PostgreSQL, with SQLAlchemy 2 Core and asyncpg.

Single-use operations get their atomicity from PostgreSQL itself (``DELETE ... RETURNING``,
``INSERT ... ON CONFLICT ... RETURNING``, conditional ``UPDATE``), never from a read
followed by a write. Each part of the port is a mixin in the module of its name
(``identities``, ``credentials``, ``codes``, ``tokens``, ``ephemeral``, ``clients``,
``sessions``, ``consents``, ``device``, ``account_tokens``, ``transfer``, ``admin``), all
over one :class:`~adapters.sql.connection.SqlConnection`, which translates every driver
error, once, into a domain error.
"""

from __future__ import annotations

from adapters.sql.account_tokens import SqlAccountTokens
from adapters.sql.admin import SqlAdmin
from adapters.sql.clients import SqlClients
from adapters.sql.codes import SqlCodes
from adapters.sql.consents import SqlConsents
from adapters.sql.credentials import SqlCredentials
from adapters.sql.device import SqlDevice
from adapters.sql.ephemeral import SqlEphemeral
from adapters.sql.identities import SqlIdentities
from adapters.sql.sessions import SqlSessions
from adapters.sql.tokens import SqlTokens
from adapters.sql.transfer import SqlTransfer


class SqlStore(
    SqlIdentities, SqlCredentials, SqlCodes, SqlTokens, SqlEphemeral, SqlClients, SqlSessions,
    SqlConsents, SqlDevice, SqlAccountTokens, SqlTransfer, SqlAdmin,
):
    """The ``Store`` port over PostgreSQL. Build it with :func:`adapters.sql.open_sql_store`.

    Holds one SQLAlchemy ``AsyncEngine`` (a pool of asyncpg connections, not pinged on
    checkout: a connection found dead on use invalidates the pool and the work is retried
    once where that is safe, so the store recovers by itself after a database restart).
    """
