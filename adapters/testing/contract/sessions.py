"""The session part of the Store contract: browser sessions of single sign-on (the
``SessionStore`` port)."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec

from adapters.testing.contract.fixtures import CONCURRENCY, StoreFixtures
from domain.sessions import Session, SessionGrant, SessionRecord
from ports.store import Store

IDLE = 8 * 3600
MAX = 7 * 86400


def _session(name: str, now: int, *, user_id: str = "user-1", **changes: object) -> Session:
    session = Session(
        id_hash=hashlib.sha256(name.encode()).hexdigest(),
        sid=f"sid_{name}",
        user_id=user_id,
        auth_time=now - 5,
        amr=("pwd",),
        acr="pwd",
        created_at=now - 5,
        idle_exp=now + IDLE,
        exp=now - 5 + MAX,
    )
    return msgspec.structs.replace(session, **changes)


class SessionContract(StoreFixtures):
    """Sessions: created, found by ``id_hash`` while live, grants recorded atomically,
    ended once (by hash, by ``sid``, or all of a user's), on every instance at once.

    The tests named "across instances" use the ``other_instance`` fixture (by default the
    store itself)."""

    async def test_a_created_session_is_found_by_its_hash_as_stored(
        self, store: Store, now: int
    ) -> None:
        session = _session("a", now, amr=("pwd", "otp", "mfa"), acr="mfa")
        await store.create_session(session, now)
        assert await store.get_session(session.id_hash, now) == session
        assert await store.get_session(_session("unknown", now).id_hash, now) is None

    async def test_a_session_is_absent_once_idle_or_past_its_absolute_expiry(
        self, store: Store, now: int
    ) -> None:
        idle = _session("idle", now, idle_exp=now + 60)
        old = _session("old", now, exp=now + 60, idle_exp=now + 60)
        await store.create_session(idle, now)
        await store.create_session(old, now)
        assert await store.get_session(idle.id_hash, now + 59) == idle
        for s in (idle, old):
            assert await store.get_session(s.id_hash, now + 60) is None
            assert await store.add_session_grant(
                s.id_hash, SessionGrant("web", "gr_1"), now + 999, now + 60) is None
            assert await store.end_session(s.id_hash, now + 60) is None
        assert await store.list_sessions("user-1", now + 60) == ()

    async def test_a_grant_records_the_client_once_and_pushes_the_idle_expiry(
        self, store: Store, now: int
    ) -> None:
        session = _session("a", now, idle_exp=now + 100)
        await store.create_session(session, now)
        first = await store.add_session_grant(
            session.id_hash, SessionGrant("web", "gr_1"), now + 500, now + 10)
        assert first is not None
        assert first.clients == ("web",) and first.idle_exp == now + 500
        second = await store.add_session_grant(
            session.id_hash, SessionGrant("web", "gr_2"), now + 400, now + 20)
        assert second is not None
        # Never pulled back by an earlier idle expiry.
        assert second.clients == ("web",) and second.idle_exp == now + 500
        third = await store.add_session_grant(
            session.id_hash, SessionGrant("mail", "gr_3"), now + 600, now + 30)
        assert third is not None and third.clients == ("web", "mail")
        assert await store.get_session(session.id_hash, now + 30) == third
        # The session outlives its first idle expiry.
        assert await store.get_session(session.id_hash, now + 550) == third
        ended = await store.end_session(session.id_hash, now + 40)
        assert ended is not None
        assert ended.session == third
        assert set(ended.grants) == {SessionGrant("web", "gr_1"), SessionGrant("web", "gr_2"),
                                     SessionGrant("mail", "gr_3")}

    async def test_the_idle_expiry_never_passes_the_absolute_one(
        self, store: Store, now: int
    ) -> None:
        session = _session("a", now, exp=now + 300, idle_exp=now + 100)
        await store.create_session(session, now)
        updated = await store.add_session_grant(
            session.id_hash, SessionGrant("web", "gr_1"), now + 10_000, now)
        assert updated is not None and updated.idle_exp == now + 300
        assert await store.get_session(session.id_hash, now + 300) is None

    async def test_concurrent_grants_for_different_clients_all_land(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        session = _session("a", now)
        await store.create_session(session, now)
        await asyncio.gather(*(
            (store if n % 2 else other_instance).add_session_grant(
                session.id_hash, SessionGrant(f"client-{n}", f"gr_{n}"), now + IDLE, now)
            for n in range(CONCURRENCY)))
        found = await other_instance.get_session(session.id_hash, now)
        assert found is not None
        assert sorted(found.clients) == sorted(f"client-{n}" for n in range(CONCURRENCY))
        ended = await store.end_session(session.id_hash, now)
        assert ended is not None and len(ended.grants) == CONCURRENCY

    async def test_reauthenticating_rekeys_and_changes_how_but_keeps_sid_clients_and_grants(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        session = _session("a", now, idle_exp=now + 100)
        new_hash = _session("a2", now).id_hash
        await store.create_session(session, now)
        await store.add_session_grant(session.id_hash, SessionGrant("web", "gr_1"), now + 100,
                                      now)
        await store.add_session_grant(session.id_hash, SessionGrant("mail", "gr_2"), now + 100,
                                      now)
        again = await store.reauthenticate_session(
            session.id_hash, new_hash, auth_time=now + 50, amr=("pwd", "otp", "mfa"),
            acr="mfa", idle_exp=now + 700, now=now + 50)
        assert again is not None
        assert again.id_hash == new_hash
        assert (again.auth_time, again.amr, again.acr) == (now + 50, ("pwd", "otp", "mfa"), "mfa")
        assert (again.sid, again.user_id, again.clients, again.exp, again.created_at) == \
            (session.sid, session.user_id, ("web", "mail"), session.exp, session.created_at)
        assert again.idle_exp == now + 700
        # The old cookie names nothing any more, on any instance.
        for instance in (store, other_instance):
            assert await instance.get_session(session.id_hash, now + 60) is None
            assert await instance.get_session(new_hash, now + 60) == again
        assert await store.add_session_grant(
            session.id_hash, SessionGrant("web", "gr_x"), now + 800, now + 60) is None
        assert await store.end_session(session.id_hash, now + 60) is None
        assert await store.reauthenticate_session(
            session.id_hash, _session("a3", now).id_hash, auth_time=now + 60, amr=("pwd",),
            acr="pwd", idle_exp=now + 800, now=now + 60) is None
        assert await store.list_sessions("user-1", now + 60) == (again,)
        # Still findable by its sid; its grants came along, in their order.
        ended = await other_instance.end_session_by_sid(session.sid, now + 60)
        assert ended is not None and ended.session == again
        assert ended.grants == (SessionGrant("web", "gr_1"), SessionGrant("mail", "gr_2"))
        assert await store.get_session(new_hash, now + 60) is None
        assert await store.reauthenticate_session(
            new_hash, _session("a4", now).id_hash, auth_time=now + 70, amr=("pwd",),
            acr="pwd", idle_exp=now + 800, now=now + 70) is None

    async def test_a_rekeyed_session_takes_new_grants_and_ends_with_all_of_them(
        self, store: Store, now: int
    ) -> None:
        session = _session("a", now)
        new_hash = _session("a2", now).id_hash
        await store.create_session(session, now)
        await store.add_session_grant(session.id_hash, SessionGrant("web", "gr_1"), now + IDLE,
                                      now)
        again = await store.reauthenticate_session(
            session.id_hash, new_hash, auth_time=now, amr=("pwd",), acr="pwd",
            idle_exp=now + IDLE, now=now)
        assert again is not None
        later = await store.add_session_grant(new_hash, SessionGrant("mail", "gr_2"),
                                              now + IDLE, now)
        assert later is not None and later.clients == ("web", "mail")
        ended = await store.end_user_sessions("user-1", now)
        assert [r.session.id_hash for r in ended] == [new_hash]
        assert ended[0].grants == (SessionGrant("web", "gr_1"), SessionGrant("mail", "gr_2"))

    async def test_reauthenticating_a_dead_session_rekeys_nothing(
        self, store: Store, now: int
    ) -> None:
        session = _session("a", now, idle_exp=now + 60)
        new_hash = _session("a2", now).id_hash
        await store.create_session(session, now)
        assert await store.reauthenticate_session(
            session.id_hash, new_hash, auth_time=now + 60, amr=("pwd",), acr="pwd",
            idle_exp=now + 999, now=now + 60) is None
        assert await store.get_session(new_hash, now + 60) is None
        assert await store.list_sessions("user-1", now + 60) == ()

    async def test_of_concurrent_reauthentications_across_instances_exactly_one_wins(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        session = _session("a", now)
        await store.create_session(session, now)
        await store.add_session_grant(session.id_hash, SessionGrant("web", "gr_1"), now + IDLE,
                                      now)
        new_hashes = [_session(f"new-{n}", now).id_hash for n in range(CONCURRENCY)]
        results = await asyncio.gather(*(
            (store if n % 2 else other_instance).reauthenticate_session(
                session.id_hash, new_hash, auth_time=now, amr=("pwd", "otp", "mfa"),
                acr="mfa", idle_exp=now + IDLE, now=now)
            for n, new_hash in enumerate(new_hashes)))
        won = [r for r in results if r is not None]
        assert len(won) == 1
        winner = won[0]
        assert await store.get_session(session.id_hash, now) is None
        for new_hash in new_hashes:
            found = await other_instance.get_session(new_hash, now)
            assert found == (winner if new_hash == winner.id_hash else None)
        assert await store.list_sessions("user-1", now) == (winner,)
        ended = await store.end_session(winner.id_hash, now)
        assert ended is not None and ended.grants == (SessionGrant("web", "gr_1"),)

    async def test_a_users_sessions_are_listed_oldest_first_and_no_one_elses(
        self, store: Store, now: int
    ) -> None:
        second = _session("b", now, created_at=now - 1)
        first = _session("a", now, created_at=now - 9)
        other = _session("c", now, user_id="user-2")
        for s in (second, first, other):
            await store.create_session(s, now)
        assert await store.list_sessions("user-1", now) == (first, second)
        assert await store.list_sessions("user-2", now) == (other,)
        assert await store.list_sessions("nobody", now) == ()

    async def test_ending_a_session_returns_it_once_and_it_is_gone(
        self, store: Store, now: int
    ) -> None:
        session = _session("a", now)
        await store.create_session(session, now)
        assert await store.end_session(session.id_hash, now) == SessionRecord(session, ())
        assert await store.end_session(session.id_hash, now) is None
        assert await store.get_session(session.id_hash, now) is None
        assert await store.end_session_by_sid(session.sid, now) is None
        assert await store.list_sessions("user-1", now) == ()

    async def test_a_session_is_ended_by_its_sid(self, store: Store, now: int) -> None:
        session = _session("a", now)
        kept = _session("b", now)
        await store.create_session(session, now)
        await store.create_session(kept, now)
        await store.add_session_grant(session.id_hash, SessionGrant("web", "gr_1"), now + 10,
                                      now)
        ended = await store.end_session_by_sid(session.sid, now)
        assert ended is not None and ended.session.id_hash == session.id_hash
        assert ended.grants == (SessionGrant("web", "gr_1"),)
        assert await store.get_session(session.id_hash, now) is None
        assert await store.get_session(kept.id_hash, now) == kept
        assert await store.end_session_by_sid("sid_unknown", now) is None

    async def test_revoking_a_users_sessions_ends_all_of_them(
        self, store: Store, now: int
    ) -> None:
        mine = [_session(f"s{n}", now) for n in range(3)]
        theirs = _session("other", now, user_id="user-2")
        for s in (*mine, theirs):
            await store.create_session(s, now)
        await store.add_session_grant(mine[0].id_hash, SessionGrant("web", "gr_1"), now + 10,
                                      now)
        ended = await store.end_user_sessions("user-1", now)
        assert sorted(r.session.sid for r in ended) == sorted(s.sid for s in mine)
        assert next(r for r in ended if r.session.sid == mine[0].sid).grants == \
            (SessionGrant("web", "gr_1"),)
        for s in mine:
            assert await store.get_session(s.id_hash, now) is None
        assert await store.get_session(theirs.id_hash, now) == theirs
        assert await store.end_user_sessions("user-1", now) == ()

    async def test_a_session_made_on_one_instance_is_used_and_ended_on_another(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        session = _session("a", now)
        await store.create_session(session, now)
        assert await other_instance.get_session(session.id_hash, now) == session
        updated = await other_instance.add_session_grant(
            session.id_hash, SessionGrant("web", "gr_1"), now + IDLE, now)
        assert await store.get_session(session.id_hash, now) == updated
        assert await store.end_user_sessions("user-1", now) != ()
        assert await other_instance.get_session(session.id_hash, now) is None

    async def test_concurrent_ends_across_instances_return_the_session_once(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        sessions = [_session(f"s{n}", now) for n in range(CONCURRENCY)]
        for s in sessions:
            await store.create_session(s, now)
        results = await asyncio.gather(*(
            call for s in sessions for call in (
                store.end_session(s.id_hash, now), other_instance.end_session_by_sid(s.sid, now),
                other_instance.end_user_sessions("user-1", now))))
        ended: list[str] = []
        for result in results:
            if isinstance(result, SessionRecord):
                ended.append(result.session.sid)
            elif isinstance(result, tuple):
                ended.extend(r.session.sid for r in result)
        assert sorted(ended) == sorted(s.sid for s in sessions)
