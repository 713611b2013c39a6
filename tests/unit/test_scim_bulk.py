"""Reading and planning a SCIM Bulk request (domain.scim.bulk), without a store."""

from __future__ import annotations

from typing import Any

import pytest

from domain.scim.bulk import MAX_OPERATIONS, BulkLimitExceeded, plan, read_bulk_request


def _post(bulk_id: str, *refs: str) -> dict[str, Any]:
    return {"method": "POST", "path": "/Groups", "bulkId": bulk_id,
            "data": {"displayName": bulk_id, "members": [{"value": f"bulkId:{r}"} for r in refs]}}


def test_an_operation_runs_after_those_it_refers_to_else_in_request_order() -> None:
    request = read_bulk_request({"Operations": [
        _post("a", "c"), _post("b"), _post("c", "b"), _post("d")]})
    order, cyclic = plan(request.operations)
    assert order == [1, 2, 0, 3] and cyclic == set()


def test_cycles_are_found_and_only_their_members_marked() -> None:
    request = read_bulk_request({"Operations": [
        _post("a", "b"), _post("b", "c"), _post("c", "a"), _post("d", "a"), _post("e", "e")]})
    order, cyclic = plan(request.operations)
    assert sorted(order) == [0, 1, 2, 3, 4]
    assert cyclic == {0, 1, 2, 4}


def test_a_chain_as_long_as_the_limit_plans_without_recursion() -> None:
    operations = [_post("u0")] + [_post(f"u{i}", f"u{i - 1}") for i in range(1, MAX_OPERATIONS)]
    request = read_bulk_request({"Operations": list(reversed(operations))})
    order, cyclic = plan(request.operations)
    assert order == list(range(MAX_OPERATIONS - 1, -1, -1)) and not cyclic


def test_references_in_paths_and_nested_values_are_found() -> None:
    request = read_bulk_request({"Operations": [{
        "method": "PATCH", "path": "/Groups/bulkId:g", "data": {"Operations": [
            {"op": "add", "path": "members", "value": [{"value": "bulkId:u"}]}]}}]})
    assert set(request.operations[0].references) == {"g", "u"}


def test_more_than_max_operations_names_the_limit() -> None:
    with pytest.raises(BulkLimitExceeded) as raised:
        read_bulk_request({"Operations": [_post(f"x{i}") for i in range(MAX_OPERATIONS + 1)]})
    assert raised.value.limit == "maxOperations"
    assert "maxOperations (1000)" in str(raised.value)
