"""Email verification use cases (domain.email_verification) over the memory store, a
recording mailer and a fake clock: links for created and changed emails, none for
unchanged ones, single use, expiry, a change in between, the per-user throttle, and the
SCIM writes' hook (domain.scim.writes, Bulk included)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.memory.store import MemoryStore
from domain.email_verification import (
    KIND,
    USER_SENDS,
    InvalidAddress,
    LinkRefused,
    TooManySends,
    VerificationPorts,
    change_email,
    checked_address,
    email_claims,
    email_verified,
    email_written,
    resend_verification_link,
    verify_email,
)
from domain.entities import Email, User
from domain.errors import StoreUnavailable
from domain.scim import writes
from domain.scim.bulk import read_bulk_request, run_bulk
from domain.tokens import hash_token
from ports.mail import MailTemplate
from ports.security import SecretsTokenGenerator
from tests.doubles import FakeClock, RecordingEvents, RecordingMailer, SentMail
from tests.unit.session_doubles import logout_ports
from tests.unit.test_scim_identities import NOW, FakeHasher, ops

LINK = "https://id.example.test/account/verify-email"
LIFETIME = 86400
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@dataclass
class World:
    store: MemoryStore = field(default_factory=MemoryStore)
    clock: FakeClock = field(default_factory=lambda: FakeClock(NOW))
    events: RecordingEvents = field(default_factory=RecordingEvents)
    mailer: RecordingMailer | None = field(default_factory=RecordingMailer)

    @property
    def ports(self) -> VerificationPorts:
        return VerificationPorts(store=self.store, clock=self.clock,
                                 tokens=SecretsTokenGenerator(), events=self.events,
                                 mailer=self.mailer, link=LINK, lifetime=LIFETIME)

    def write_ports(self, *, verification: bool = True) -> writes.WritePorts:
        return writes.WritePorts(self.store, self.clock, FakeHasher(), self.events,
                                 logout_ports(self.store, self.clock, self.events),
                                 verification=self.ports if verification else None)

    @property
    def sent(self) -> list[SentMail]:
        assert self.mailer is not None
        return self.mailer.sent

    async def user(self, email: str | None = "Alice@Example.test", **extra: Any) -> User:
        emails = (Email(value=email, type="work", primary=True),) if email else ()
        return await self.store.create_user(User(user_name="alice", display_name="Alice Doe",
                                                 emails=emails, **extra))

    async def verified(self, user_id: str) -> bool:
        user = await self.store.get_user(user_id)
        return email_verified(user, await self.store.get_credentials(user_id))


def secret_of(mail: SentMail) -> str:
    """The link's secret, as the user's mail client would find it in the message."""
    parts = urlsplit(mail.values["link"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == LINK
    return parse_qs(parts.query)["token"][0]


@pytest.fixture
def w() -> World:
    return World()


async def test_a_created_email_gets_a_link_stored_only_hashed(w: World) -> None:
    user = await w.user()
    assert await email_written(w.ports, None, user, reason="scim")

    [mail] = w.sent
    assert (mail.template, mail.to, mail.user_id) == ("email_verification",
                                                      "Alice@Example.test", user.id)
    assert mail.values["name"] == "Alice Doe" and mail.values["expires"] == "1 day"
    secret = secret_of(mail)
    assert secret.startswith("ev_") and len(secret) >= 40
    [token] = (await w.store.export_account_tokens(None, 10, NOW)).records
    assert token.token_hash == hash_token(secret) and secret not in repr(token)
    assert (token.kind, token.user_id, token.email) == (KIND, user.id, "alice@example.test")
    assert token.exp == NOW + LIFETIME
    assert w.events.named("email_verification_sent") == [{"user_id": user.id,
                                                          "reason": "scim"}]
    assert not await w.verified(user.id)


async def test_using_the_link_verifies_the_address(w: World) -> None:
    user = await w.user()
    await email_written(w.ports, None, user, reason="scim")
    w.clock.advance(LIFETIME - 1)

    verified = await verify_email(w.ports, secret_of(w.sent[0]))

    assert verified.id == user.id
    assert (await w.store.get_credentials(user.id)).verified_email == "alice@example.test"
    assert await w.verified(user.id)
    assert await email_claims(w.store, user) == {"email": "Alice@Example.test",
                                                 "email_verified": True}
    assert w.events.named("email_verified") == [{"user_id": user.id}]


async def test_a_link_works_once(w: World) -> None:
    user = await w.user()
    await email_written(w.ports, None, user, reason="scim")
    secret = secret_of(w.sent[0])
    await verify_email(w.ports, secret)

    with pytest.raises(LinkRefused) as refused:
        await verify_email(w.ports, secret)
    assert refused.value.reason == "invalid"


async def test_an_expired_link_is_refused(w: World) -> None:
    user = await w.user()
    await email_written(w.ports, None, user, reason="scim")
    w.clock.advance(LIFETIME)

    with pytest.raises(LinkRefused) as refused:
        await verify_email(w.ports, secret_of(w.sent[0]))
    assert refused.value.reason == "invalid"
    assert not await w.verified(user.id)


@pytest.mark.parametrize("secret", ["", "ev_short", "xx_" + "a" * 43, "ev_" + "a" * 200,
                                    "ev_" + "a" * 42 + "\x00", "ev_" + "a" * 43])
async def test_a_malformed_or_unknown_secret_is_refused(w: World, secret: str) -> None:
    with pytest.raises(LinkRefused) as refused:
        await verify_email(w.ports, secret)
    assert refused.value.reason == "invalid"


async def test_a_changed_email_gets_a_new_link_and_the_old_one_is_revoked(w: World) -> None:
    before = await w.user()
    await email_written(w.ports, None, before, reason="scim")
    after = await w.store.replace_user(User(
        id=before.id, user_name="alice", emails=(Email(value="alice@new.example", primary=True),
                                                 Email(value="Alice@Example.test"))))

    assert await email_written(w.ports, before, after, reason="scim")

    old, new = w.sent
    assert new.to == "alice@new.example"
    with pytest.raises(LinkRefused):
        await verify_email(w.ports, secret_of(old))
    await verify_email(w.ports, secret_of(new))
    assert (await w.store.get_credentials(before.id)).verified_email == "alice@new.example"


async def test_an_unchanged_email_gets_no_link(w: World) -> None:
    before = await w.user()
    # Other attributes and the address's case may change: the mailbox is the same.
    after = await w.store.replace_user(User(
        id=before.id, user_name="alice", display_name="Alice B. Doe",
        emails=(Email(value="alice@example.TEST", primary=True),)))

    assert not await email_written(w.ports, before, after, reason="scim")
    assert w.sent == []


async def test_a_link_used_after_a_change_is_refused(w: World) -> None:
    user = await w.user()
    await email_written(w.ports, None, user, reason="scim")
    secret = secret_of(w.sent[0])
    # The address changes without a link (as with no mailer at the time).
    await w.store.replace_user(User(id=user.id, user_name="alice",
                                    emails=(Email(value="mallory@example.test"),)))

    with pytest.raises(LinkRefused) as refused:
        await verify_email(w.ports, secret)
    assert refused.value.reason == "changed"
    assert (await w.store.get_credentials(user.id)).verified_email is None


async def test_changing_the_email_unverifies_it_at_once(w: World) -> None:
    user = await w.user()
    await email_written(w.ports, None, user, reason="scim")
    await verify_email(w.ports, secret_of(w.sent[0]))

    changed = await change_email(w.ports, user, "alice@elsewhere.example")

    assert not await w.verified(user.id)
    assert await email_claims(w.store, changed) == {"email": "alice@elsewhere.example",
                                                    "email_verified": False}
    # Back to the proved address: verified again, no mail needed.
    await change_email(w.ports, changed, "alice@example.test")
    assert await w.verified(user.id)
    assert [m.to for m in w.sent] == ["Alice@Example.test", "alice@elsewhere.example"]


async def test_change_email_replaces_the_primary_entry(w: World) -> None:
    user = await w.store.create_user(User(user_name="alice", emails=(
        Email(value="home@example.test", type="home"),
        Email(value="work@example.test", type="work", primary=True))))

    stored = await change_email(w.ports, user, "  new@example.test ")

    assert stored.emails == (Email(value="home@example.test", type="home"),
                             Email(value="new@example.test", type="work", primary=True))
    assert stored.version == user.version + 1
    assert [m.to for m in w.sent] == ["new@example.test"]
    assert w.events.named("email_changed") == [{"user_id": user.id, "source": "account"}]
    no_email = await w.store.create_user(User(user_name="bob"))
    assert (await change_email(w.ports, no_email, "bob@example.test")).emails == (
        Email(value="bob@example.test", primary=True),)


@pytest.mark.parametrize("address", [
    "", "alice", "alice@", "@example.test", "alice@example", "a b@example.test",
    "alice@exa mple.test", '"a"@example.test', "alice@-example.test", "a@b@example.test",
    "alice@example..test", ".alice@example.test", "alice\r\nBcc: x@example.test",
    "alice@example.test\x00", "alice\u2028@example.test", "a" * 65 + "@example.test",
    "a@" + "b" * 250 + ".test",
])
def test_addresses_that_are_refused(address: str) -> None:
    with pytest.raises(InvalidAddress):
        checked_address(address)


@pytest.mark.parametrize("address", ["alice@example.test", "a.b+tag@mail.example.co.uk",
                                     "jörg@bücher.example", "o'neil@example.test"])
def test_addresses_that_are_accepted(address: str) -> None:
    assert checked_address(f" {address} ") == address


async def test_resending_is_throttled_per_user(w: World) -> None:
    alice = await w.user()
    bob = await w.store.create_user(User(user_name="bob", emails=(Email(value="b@x.test"),)))
    for _ in range(USER_SENDS.limit):
        assert await resend_verification_link(w.ports, alice) == "sent"

    with pytest.raises(TooManySends) as throttled:
        await resend_verification_link(w.ports, alice)
    retry_after = throttled.value.retry_after
    assert 0 < retry_after <= USER_SENDS.window_seconds
    # A change of address counts too: it mails whatever address it is given.
    with pytest.raises(TooManySends):
        await change_email(w.ports, alice, "victim@example.test")
    assert primary_address(await w.store.get_user(alice.id)) == "Alice@Example.test"
    assert await resend_verification_link(w.ports, bob) == "sent"
    assert len(w.sent) == USER_SENDS.limit + 1

    w.clock.advance(retry_after)
    assert await resend_verification_link(w.ports, alice) == "sent"
    # Only the newest link works.
    links = [secret_of(m) for m in w.sent if m.user_id == alice.id]
    for secret in links[:-1]:
        with pytest.raises(LinkRefused):
            await verify_email(w.ports, secret)
    await verify_email(w.ports, links[-1])


def primary_address(user: User) -> str | None:
    return next((e.value for e in user.emails if e.primary), None)


async def test_resend_says_why_nothing_was_sent(w: World) -> None:
    alice = await w.user()
    nobody = await w.store.create_user(User(user_name="nobody"))
    assert await resend_verification_link(w.ports, nobody) == "no_email"
    await resend_verification_link(w.ports, alice)
    await verify_email(w.ports, secret_of(w.sent[0]))
    assert await resend_verification_link(w.ports, alice) == "verified"
    assert len(w.sent) == 1


async def test_without_a_mailer_nothing_is_sent_or_verified(w: World) -> None:
    w.mailer = None
    user = await w.user()
    assert not await email_written(w.ports, None, user, reason="scim")
    assert await resend_verification_link(w.ports, user) == "unavailable"
    await change_email(w.ports, user, "new@example.test")
    assert (await w.store.export_account_tokens(None, 10, NOW)).records == ()
    assert not await w.verified(user.id)


async def test_a_deactivated_user_gets_no_link_and_cannot_verify(w: World) -> None:
    inactive = await w.user(active=False)
    assert not await email_written(w.ports, None, inactive, reason="scim")
    active = await w.store.create_user(User(user_name="bob",
                                            emails=(Email(value="bob@example.test"),)))
    await email_written(w.ports, None, active, reason="scim")
    await w.store.replace_user(User(id=active.id, user_name="bob", active=False,
                                    emails=active.emails))
    with pytest.raises(LinkRefused):
        await verify_email(w.ports, secret_of(w.sent[0]))


async def test_scim_writes_mail_links_for_new_and_changed_emails(w: World) -> None:
    ports = w.write_ports()
    user = await writes.create_user(ports, {"userName": "alice", "emails": [
        {"value": "alice@example.test", "primary": True}]})
    await writes.create_user(ports, {"userName": "noemail"})
    await writes.patch_user(ports, user.id, ops(
        {"op": "replace", "path": "displayName", "value": "Alice"}), None)
    await writes.replace_user(ports, user.id, {"userName": "alice", "emails": [
        {"value": "alice@example.test", "primary": True}]}, None)
    assert [m.to for m in w.sent] == ["alice@example.test"]

    await writes.patch_user(ports, user.id, ops(
        {"op": "replace", "path": "emails", "value": [{"value": "a2@example.test"}]}), None)
    await writes.replace_user(ports, user.id, {"userName": "alice", "emails": [
        {"value": "a3@example.test"}]}, None)

    assert [m.to for m in w.sent] == ["alice@example.test", "a2@example.test",
                                      "a3@example.test"]
    for old in w.sent[:2]:
        with pytest.raises(LinkRefused):
            await verify_email(w.ports, secret_of(old))
    await verify_email(w.ports, secret_of(w.sent[2]))


async def test_a_bulk_request_mails_each_created_user(w: World) -> None:
    request = read_bulk_request({"schemas": [BULK], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": f"u{i}",
         "data": {"userName": f"user{i}", "emails": [{"value": f"user{i}@example.test"}]}}
        for i in range(3)
    ] + [{"method": "POST", "path": "/Users", "bulkId": "x", "data": {"userName": "user0"}}]})

    outcomes = await run_bulk(w.write_ports(), request, may_write=True)

    assert [o.status for o in outcomes] == [201, 201, 201, 0]
    assert sorted(m.to for m in w.sent) == [f"user{i}@example.test" for i in range(3)]


async def test_provisioning_without_verification_mails_nothing(w: World) -> None:
    await writes.create_user(w.write_ports(verification=False), {
        "userName": "alice", "emails": [{"value": "alice@example.test"}]})
    assert w.sent == []


class BrokenMailer:
    def send(self, template: MailTemplate, *, to: str, user_id: str,
             values: Any) -> None:
        raise RuntimeError("the mail adapter broke its promise")


class FailingTokens(MemoryStore):
    async def save_account_token(self, token: Any, now: int) -> None:
        raise StoreUnavailable("account tokens unavailable")


@pytest.mark.parametrize("broken", ["mailer", "store"])
async def test_a_failure_to_send_never_fails_the_scim_write(w: World, broken: str) -> None:
    if broken == "mailer":
        w.mailer = BrokenMailer()  # type: ignore[assignment]
    else:
        w.store = FailingTokens()

    user = await writes.create_user(w.write_ports(), {
        "userName": "alice", "emails": [{"value": "alice@example.test"}]})

    assert (await w.store.get_user(user.id)).user_name == "alice"
    error = "mailer" if broken == "mailer" else "store_unavailable"
    assert w.events.named("email_verification_failed") == [
        {"user_id": user.id, "reason": "scim", "error": error}]



