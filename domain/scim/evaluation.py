"""SCIM filter semantics as plain predicates, over any object a resolver can read.

``compile_filter(expr, resolve)`` turns a filter into a function ``object -> bool``. The
``resolve`` callback says, for an attribute path, how to read it from the object
(:class:`ScalarTarget`) or how to iterate its values (:class:`MultiTarget`). The memory
adapter resolves entity attributes (``adapters.memory.filtering``); the PATCH engine
resolves the values of a multi-valued attribute held as JSON objects. Both therefore share
one set of rules, the same the sql adapter implements (see ``adapters.memory.filtering``):

- ``ci`` strings compare after ``str.lower()``; ``exact`` strings as they are; ordering is
  by code point; ``co``/``sw``/``ew`` are substring, prefix and suffix tests;
- ``time`` values are Unix seconds compared with an ISO 8601 value, chronologically;
- ``bool`` values take only ``eq`` (and ``ne``); a missing boolean reads as false;
- a comparison on a missing value is false; ``ne`` is exactly ``not eq``;
  ``eq null`` is ``not pr`` and ``pr`` means present and non-empty;
- on a multi-valued attribute a comparison holds when any value matches; a value path
  ``attr[inner]`` holds when one value satisfies the whole of ``inner``.

Compiling raises ``InvalidValue`` for what cannot be evaluated (unknown attributes, an
ordering on a boolean), so a bad filter fails whether or not there is anything to test.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from domain.errors import InvalidValue
from domain.filters import And, AttrPath, Compare, Filter, Not, Or, Present, Scalar, ValuePath
from domain.scim.schema import Kind, parse_instant

Predicate = Callable[[Any], bool]


class ScalarTarget(NamedTuple):
    """One value: how to read it (None when missing) and how it compares."""

    get: Callable[[Any], Any]
    kind: Kind


class MultiTarget(NamedTuple):
    """A complex or multi-valued attribute: its values and how to read their sub-attributes.

    ``default_sub`` is the sub-attribute a comparison on the bare attribute means.
    """

    values: Callable[[Any], Iterable[Any]]
    resolve: Resolver
    default_sub: str


Resolver = Callable[[AttrPath], ScalarTarget | MultiTarget]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def _never(_: Any) -> bool:
    return False


def _present_scalar(target: ScalarTarget) -> Predicate:
    get = target.get
    if target.kind in ("ci", "exact"):
        return lambda item: (value := get(item)) is not None and value != ""
    return lambda item: get(item) is not None


def _present(resolve: Resolver, path: AttrPath) -> Predicate:
    target = resolve(path)
    if isinstance(target, ScalarTarget):
        return _present_scalar(target)
    inner = _present(target.resolve, AttrPath(target.default_sub))
    values = target.values
    return lambda item: any(inner(value) for value in values(item))


def _text_test(get: Callable[[Any], Any], kind: Kind, op: str, needle: str) -> Predicate:
    read: Callable[[Any], Any] = get
    if kind == "ci":
        needle = needle.lower()

        def read(item: Any) -> str | None:
            value = get(item)
            return value.lower() if isinstance(value, str) else None
    if op == "co":
        return lambda item: (value := read(item)) is not None and needle in value
    if op == "sw":
        return lambda item: (value := read(item)) is not None and value.startswith(needle)
    if op == "ew":
        return lambda item: (value := read(item)) is not None and value.endswith(needle)
    compare = _ORDER[op]
    return lambda item: (value := read(item)) is not None and compare(value, needle)


def _compare_scalar(target: ScalarTarget, op: str, value: Scalar) -> Predicate:
    get, kind = target
    if value is None:
        if op == "eq":
            present = _present_scalar(target)
            return lambda item: not present(item)
        raise InvalidValue(f"'{op}' cannot compare with null")
    if kind == "bool":
        if op != "eq":
            raise InvalidValue(f"'{op}' does not apply to a boolean attribute")
        if not isinstance(value, bool):
            return _never
        return lambda item: bool(get(item)) is value
    if kind == "time":
        instant = parse_instant(value)
        if op in ("co", "sw", "ew"):
            raise InvalidValue(f"'{op}' does not apply to a date-time attribute")
        compare = _ORDER[op]
        return lambda item: (moment := get(item)) is not None and compare(moment, instant)
    if not isinstance(value, str):
        # A string attribute never equals a number or a boolean.
        if op in ("eq", "co", "sw", "ew"):
            return _never
        raise InvalidValue(f"'{op}' on a string attribute needs a string value")
    return _text_test(get, kind, op, value)


def _compare(resolve: Resolver, expr: Compare) -> Predicate:
    if expr.op == "ne":
        positive = _compare(resolve, Compare(expr.path, "eq", expr.value))
        return lambda item: not positive(item)
    target = resolve(expr.path)
    if isinstance(target, ScalarTarget):
        return _compare_scalar(target, expr.op, expr.value)
    if expr.value is None and expr.op == "eq":
        present = _present(resolve, expr.path)
        return lambda item: not present(item)
    inner = _compare(target.resolve, Compare(AttrPath(target.default_sub), expr.op, expr.value))
    values = target.values
    return lambda item: any(inner(value) for value in values(item))


def compile_filter(expr: Filter, resolve: Resolver) -> Predicate:
    """A predicate equivalent to ``expr``; raises ``InvalidValue`` when it cannot be evaluated."""
    if isinstance(expr, Compare):
        return _compare(resolve, expr)
    if isinstance(expr, Present):
        return _present(resolve, expr.path)
    if isinstance(expr, And):
        left, right = compile_filter(expr.left, resolve), compile_filter(expr.right, resolve)
        return lambda item: left(item) and right(item)
    if isinstance(expr, Or):
        left, right = compile_filter(expr.left, resolve), compile_filter(expr.right, resolve)
        return lambda item: left(item) or right(item)
    if isinstance(expr, Not):
        inner = compile_filter(expr.inner, resolve)
        return lambda item: not inner(item)
    if isinstance(expr, ValuePath):
        target = resolve(AttrPath(expr.path.attr, None, expr.path.schema))
        if isinstance(target, ScalarTarget) or expr.path.sub_attr is not None:
            raise InvalidValue(f"{expr.path.dotted()} is not a multi-valued or complex attribute")
        inner = compile_filter(expr.inner, target.resolve)
        values = target.values
        return lambda item: any(inner(value) for value in values(item))
    raise InvalidValue(f"unsupported filter node {type(expr).__name__}")
