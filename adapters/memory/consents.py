"""``MemoryConsents``: the ``ConsentStore`` port (and its transfer pair) in process memory.

No method awaits between reading and writing, so on one event loop each is atomic.
"""

from __future__ import annotations

import bisect

import msgspec

from domain.consent import (
    Consent,
    ConsentGrant,
    ConsentRecord,
    merge_consents,
    merged_scopes,
)
from domain.records import Batch

_Key = tuple[str, str]


class MemoryConsents:
    """:class:`ports.store.ConsentStore` and ``ConsentTransfer`` over dicts."""

    __slots__ = ("_consents", "_grants", "_keys")

    def __init__(self) -> None:
        self._consents: dict[_Key, Consent] = {}
        self._grants: dict[_Key, dict[str, int]] = {}
        #: The (user_id, client_id) keys in ascending order, for keyset paging.
        self._keys: list[_Key] = []

    @property
    def count(self) -> int:
        return len(self._consents)

    def purge(self, now: int) -> int:
        dead = 0
        for grants in self._grants.values():
            for grant_id in [g for g, exp in grants.items() if exp <= now]:
                del grants[grant_id]
                dead += 1
        return dead

    def _put(self, consent: Consent) -> None:
        key = (consent.user_id, consent.client_id)
        if key not in self._consents:
            bisect.insort(self._keys, key)
        self._consents[key] = consent

    def _live_grants(self, key: _Key, now: int) -> tuple[ConsentGrant, ...]:
        grants = self._grants.get(key, {})
        return tuple(ConsentGrant(g, exp) for g, exp in sorted(grants.items()) if exp > now)

    # ConsentStore

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        """See :meth:`ports.store.ConsentStore.get_consent`."""
        return self._consents.get((user_id, client_id))

    async def grant_consent(
        self, user_id: str, client_id: str, scopes: tuple[str, ...], now: int
    ) -> Consent:
        """See :meth:`ports.store.ConsentStore.grant_consent`."""
        held = self._consents.get((user_id, client_id))
        if held is None:
            consent = Consent(user_id=user_id, client_id=client_id,
                              scopes=merged_scopes((), scopes), created_at=now, updated_at=now)
        else:
            consent = msgspec.structs.replace(
                held, scopes=merged_scopes(held.scopes, scopes), updated_at=now)
        self._put(consent)
        return consent

    async def list_consents(self, user_id: str) -> tuple[Consent, ...]:
        """See :meth:`ports.store.ConsentStore.list_consents`."""
        start = bisect.bisect_left(self._keys, (user_id, ""))
        found: list[Consent] = []
        for key in self._keys[start:]:
            if key[0] != user_id:
                break
            found.append(self._consents[key])
        return tuple(found)

    async def record_consent_grant(
        self, user_id: str, client_id: str, grant_id: str, exp: int, now: int
    ) -> bool:
        """See :meth:`ports.store.ConsentStore.record_consent_grant`."""
        key = (user_id, client_id)
        if key not in self._consents:
            return False
        grants = self._grants.setdefault(key, {})
        grants[grant_id] = max(exp, grants.get(grant_id, exp))
        return True

    async def withdraw_consent(
        self, user_id: str, client_id: str, now: int
    ) -> ConsentRecord | None:
        """See :meth:`ports.store.ConsentStore.withdraw_consent`."""
        key = (user_id, client_id)
        consent = self._consents.pop(key, None)
        if consent is None:
            return None
        del self._keys[bisect.bisect_left(self._keys, key)]
        record = ConsentRecord(consent, self._live_grants(key, now))
        self._grants.pop(key, None)
        return record

    # ConsentTransfer

    async def export_consents(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsentRecord]:
        """See :meth:`ports.store.ConsentTransfer.export_consents`. The cursor is the last
        key as ``user_id`` NUL ``client_id``."""
        start = 0
        if cursor is not None:
            user_id, _, client_id = cursor.partition("\x00")
            start = bisect.bisect_right(self._keys, (user_id, client_id))
        keys = self._keys[start:start + limit]
        more = start + limit < len(self._keys)
        records = tuple(ConsentRecord(self._consents[k], self._live_grants(k, now)) for k in keys)
        return Batch(records, f"{keys[-1][0]}\x00{keys[-1][1]}" if keys and more else None)

    async def import_consents(self, records: tuple[ConsentRecord, ...], now: int) -> int:
        """See :meth:`ports.store.ConsentTransfer.import_consents`."""
        changed = 0
        for record in records:
            incoming = record.consent
            key = (incoming.user_id, incoming.client_id)
            held = self._consents.get(key)
            merged = incoming if held is None else merge_consents(held, incoming)
            grants = dict(self._grants.get(key, {}))
            for grant in record.grants:
                if grant.exp > now:
                    grants[grant.grant_id] = max(grant.exp, grants.get(grant.grant_id, 0))
            if held == merged and grants == self._grants.get(key, {}):
                continue
            self._put(merged)
            self._grants[key] = grants
            changed += 1
        return changed

