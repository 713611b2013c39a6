"""End to end with a real SCIM client library (scim2-client, scim2-models) on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scim2_models import (
    Email,
    Group,
    GroupMember,
    Name,
    PatchOp,
    PatchOperation,
    ScimProvider,
    SearchRequest,
    User,
)

from tests.e2e.scim_support import BACKENDS, SCIM_URL, HttpxSCIMClient, ScimHarness, scim_app


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest) -> Iterator[ScimHarness]:
    with scim_app(request.param, SCIM_URL) as running:
        yield running


@pytest.fixture
def scim(harness: ScimHarness) -> HttpxSCIMClient:
    harness.client.headers["Authorization"] = f"Bearer {harness.token('scim:write')}"
    client = HttpxSCIMClient(harness.client, provider=ScimProvider(models=[User, Group]))
    client.discover()
    return client


def new_user(scim: HttpxSCIMClient, user_name: str = "bjensen@example.com") -> User:
    created = scim.create(User(
        user_name=user_name,
        display_name="Barbara Jensen",
        name=Name(given_name="Barbara", family_name="Jensen"),
        emails=[Email(value=user_name, type="work", primary=True)],
        active=True,
    ))
    assert isinstance(created, User)
    return created


def test_discovery_is_honest(scim: HttpxSCIMClient) -> None:
    config = scim.provider.config
    assert config is not None
    assert config.patch.supported and config.etag.supported
    assert config.filter.supported and config.filter.max_results == 200
    assert config.change_password.supported
    assert config.sort.supported
    assert config.bulk.supported and config.bulk.max_operations == 1000
    assert config.bulk.max_payload_size == 1024 * 1024
    assert {rt.name for rt in scim.provider.resource_types} >= {"User", "Group"}


def test_user_create_read_update_delete(scim: HttpxSCIMClient) -> None:
    user = new_user(scim)
    assert user.id and user.meta.version == 'W/"1"'
    assert user.meta.location == f"{SCIM_URL}/Users/{user.id}"

    read = scim.query(User, user.id)
    assert isinstance(read, User)
    assert read.user_name == "bjensen@example.com"
    assert read.name.given_name == "Barbara"
    assert read.emails[0].value == "bjensen@example.com"

    read.display_name = "Babs"
    replaced = scim.replace(read)
    assert isinstance(replaced, User)
    assert replaced.display_name == "Babs" and replaced.meta.version == 'W/"2"'

    patched = scim.modify(User, user.id, PatchOp[User](operations=[
        PatchOperation(op="replace", path="name.familyName", value="Jensen-Smith"),
        PatchOperation(op="add", path="externalId", value="ext-1"),
    ]))
    assert isinstance(patched, User)
    assert patched.name.family_name == "Jensen-Smith"
    assert patched.external_id == "ext-1"

    scim.delete(User, user.id)
    response = scim.request("GET", f"/Users/{user.id}")
    assert response.status_code == 404


def test_list_with_filter_and_paging(scim: HttpxSCIMClient) -> None:
    for index in range(3):
        new_user(scim, f"user{index}@example.com")
    search = SearchRequest(filter='userName eq "USER1@example.com"')
    found = scim.query(User, query_parameters=search)
    assert found.total_results == 1
    assert found.resources[0].user_name == "user1@example.com"
    page = scim.query(User, query_parameters=SearchRequest(start_index=2, count=1))
    assert (page.total_results, page.start_index, page.items_per_page) == (3, 2, 1)


def test_groups_with_members_and_patch(scim: HttpxSCIMClient) -> None:
    alice = new_user(scim, "alice@example.com")
    bob = new_user(scim, "bob@example.com")
    group = scim.create(Group(display_name="Admins", members=[GroupMember(value=alice.id)]))
    assert isinstance(group, Group)
    assert [m.value for m in group.members] == [alice.id]

    patched = scim.modify(Group, group.id, PatchOp[Group](operations=[
        PatchOperation(op="add", path="members", value=[{"value": bob.id}]),
        PatchOperation(op="remove", path=f'members[value eq "{alice.id}"]'),
    ]))
    assert isinstance(patched, Group)
    assert [m.value for m in patched.members] == [bob.id]
    # members.display is returned "request": a written group reads back as it was written.
    assert patched.members[0].display is None

    bob_read = scim.query(User, bob.id)
    assert [g.value for g in bob_read.groups] == [group.id]

    scim.delete(User, bob.id)
    assert scim.query(Group, group.id).members in (None, [])
    scim.delete(Group, group.id)
    assert scim.request("GET", f"/Groups/{group.id}").status_code == 404
