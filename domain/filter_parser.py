"""Parsing SCIM filters and PATCH paths (RFC 7644 sections 3.4.2.2 and 3.5.2).

A small recursive-descent parser over a regular-expression tokenizer; no parser library
fits the ABNF closely enough to be worth a dependency. The grammar, with ``and`` binding
tighter than ``or``::

    filter    = or
    or        = and *("or" and)
    and       = unary *("and" unary)
    unary     = "not" "(" filter ")" / "(" filter ")" / valuePath / attrExp
    valuePath = attrPath "[" valFilter "]"        ; valFilter: no nested valuePath
    attrExp   = attrPath "pr" / attrPath compareOp compValue
    compValue = false / null / true / number / string   ; JSON literals
    attrPath  = [URN ":"] ATTRNAME ["." ATTRNAME]

Keywords, operators and attribute names are case-insensitive; names come out lower-cased.
Hostile input is bounded: at most :data:`MAX_FILTER_LENGTH` characters and
:data:`MAX_DEPTH` levels of nesting, so neither memory nor the recursion can be exhausted.
"""

from __future__ import annotations

import json
import re
from typing import cast

import msgspec

from domain.errors import InvalidValue
from domain.filters import (
    And,
    AttrPath,
    Compare,
    CompareOp,
    Filter,
    Not,
    Or,
    Present,
    Scalar,
    ValuePath,
)
from domain.text import is_storable

MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 50

COMPARE_OPS: frozenset[str] = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


class InvalidFilter(InvalidValue):
    """A filter that does not parse or names what the resource does not have (``invalidFilter``)."""


class InvalidPath(InvalidValue):
    """A PATCH ``path`` that does not parse or names an unknown attribute (``invalidPath``)."""


class PatchPath(msgspec.Struct, frozen=True):
    """A PATCH target: ``attr``, ``attr[filter]`` or ``attr[filter].subAttr``.

    ``attr`` is the (lower-cased) attribute path; ``value_filter`` selects values of a
    multi-valued attribute; ``sub_attr`` (only with a filter) names a sub-attribute of the
    selected values. Without a filter, a sub-attribute is in ``attr.sub_attr``.
    """

    attr: AttrPath
    value_filter: Filter | None = None
    sub_attr: str | None = None


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![\w.:]))
  | (?P<word>[A-Za-z$][\w$:.\-]*)
  | (?P<punct>[()\[\]])
    """,
    re.VERBOSE,
)

_NAME = r"[A-Za-z$][\w$\-]*"
_ATTR_PATH = re.compile(
    rf"^(?:(?P<schema>urn:[\w.:\-]+):)?(?P<attr>{_NAME})(?:\.(?P<sub>{_NAME}))?$", re.IGNORECASE
)

_Token = tuple[str, str, int]  # kind, text, position


def _tokenize(text: str, error: type[InvalidValue]) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise error(f"unexpected character {text[position]!r} at position {position}")
        kind = cast(str, match.lastgroup)
        if kind != "space":
            tokens.append((kind, match.group(), position))
        position = match.end()
    return tokens


def parse_attr_path(text: str, error: type[InvalidValue] = InvalidFilter) -> AttrPath:
    """``[urn:...:]attr[.sub]`` as a lower-cased :class:`AttrPath`."""
    match = _ATTR_PATH.match(text)
    if match is None:
        raise error(f"{text!r} is not an attribute path")
    schema, attr, sub = match.group("schema", "attr", "sub")
    return AttrPath(
        attr=attr.lower(),
        sub_attr=sub.lower() if sub else None,
        schema=schema.lower() if schema else None,
    )


class _Parser:
    __slots__ = ("depth", "error", "position", "text", "tokens")

    def __init__(self, text: str, error: type[InvalidValue]) -> None:
        self.text = text
        self.error = error
        self.tokens = _tokenize(text, error)
        self.position = 0
        self.depth = 0

    # Token access

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def next(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise self.error(f"unexpected end of filter, expected {expected}")
        self.position += 1
        return token

    def peek_keyword(self, keyword: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() == keyword

    def expect_punct(self, punct: str) -> None:
        kind, text, where = self.next(f"'{punct}'")
        if kind != "punct" or text != punct:
            raise self.error(f"expected '{punct}' at position {where}, found {text!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"filter nested deeper than {MAX_DEPTH} levels")

    def leave(self) -> None:
        self.depth -= 1

    def finish(self) -> None:
        token = self.peek()
        if token is not None:
            raise self.error(f"unexpected {token[1]!r} at position {token[2]}")

    # Grammar

    def parse_or(self, in_value_path: bool) -> Filter:
        expr = self.parse_and(in_value_path)
        while self.peek_keyword("or"):
            self.position += 1
            expr = Or(expr, self.parse_and(in_value_path))
        return expr

    def parse_and(self, in_value_path: bool) -> Filter:
        expr = self.parse_unary(in_value_path)
        while self.peek_keyword("and"):
            self.position += 1
            expr = And(expr, self.parse_unary(in_value_path))
        return expr

    def parse_unary(self, in_value_path: bool) -> Filter:
        kind, text, where = self.next("an attribute, 'not' or '('")
        if kind == "word" and text.lower() == "not":
            self.enter()
            self.expect_punct("(")
            inner = self.parse_or(in_value_path)
            self.expect_punct(")")
            self.leave()
            return Not(inner)
        if kind == "punct" and text == "(":
            self.enter()
            inner = self.parse_or(in_value_path)
            self.expect_punct(")")
            self.leave()
            return inner
        if kind != "word":
            raise self.error(f"expected an attribute at position {where}, found {text!r}")
        path = parse_attr_path(text, self.error)
        following = self.peek()
        if following is not None and following[0] == "punct" and following[1] == "[":
            if in_value_path:
                raise self.error(f"a value path cannot be nested (position {following[2]})")
            if path.sub_attr is not None:
                raise self.error(f"a value path needs a plain attribute, not {text!r}")
            self.position += 1
            self.enter()
            inner = self.parse_or(True)
            self.expect_punct("]")
            self.leave()
            return ValuePath(path, inner)
        if in_value_path and path.schema is not None:
            raise self.error(f"{text!r}: a value filter names sub-attributes only")
        return self.parse_operation(path)

    def parse_operation(self, path: AttrPath) -> Filter:
        kind, text, where = self.next("an operator")
        op = text.lower()
        if kind == "word" and op == "pr":
            return Present(path)
        if kind != "word" or op not in COMPARE_OPS:
            raise self.error(f"unknown operator {text!r} at position {where}")
        return Compare(path, cast(CompareOp, op), self.parse_value())

    def parse_value(self) -> Scalar:
        kind, text, where = self.next("a value")
        if kind == "string":
            # A JSON escape can spell what no store keeps (\u0000, a lone \ud800).
            value = cast(str, json.loads(text))
            if not is_storable(value):
                raise self.error(f"the string at position {where} contains a character that "
                                 "is not allowed (NUL or a lone surrogate)")
            return value
        if kind == "number":
            number = json.loads(text)
            return cast(int | float, number)
        if kind == "word":
            literal = text.lower()
            if literal == "true":
                return True
            if literal == "false":
                return False
            if literal == "null":
                return None
        raise self.error(
            f"expected a JSON value (string, number, true, false, null) at position {where}, "
            f"found {text!r}"
        )


def _check_length(text: str, error: type[InvalidValue], what: str) -> None:
    if len(text) > MAX_FILTER_LENGTH:
        raise error(f"{what} is longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        raise error(f"{what} is empty")


def parse_filter(text: str) -> Filter:
    """The filter expression of ``text``. Raises :class:`InvalidFilter` with the reason."""
    _check_length(text, InvalidFilter, "the filter")
    parser = _Parser(text, InvalidFilter)
    expr = parser.parse_or(False)
    parser.finish()
    return expr


def parse_patch_path(text: str) -> PatchPath:
    """A PATCH ``path``: ``attrPath`` or ``valuePath [ "." subAttr ]``.

    Raises :class:`InvalidPath`.
    """
    _check_length(text, InvalidPath, "the path")
    bracket = text.find("[")
    if bracket < 0:
        return PatchPath(parse_attr_path(text.strip(), InvalidPath))
    close = text.rfind("]")
    if close < bracket:
        raise InvalidPath(f"{text!r}: '[' without ']'")
    attr = parse_attr_path(text[:bracket].strip(), InvalidPath)
    if attr.sub_attr is not None:
        raise InvalidPath(f"{text!r}: a value filter applies to a plain attribute")
    rest = text[close + 1 :].strip()
    sub_attr: str | None = None
    if rest:
        if not rest.startswith(".") or not re.fullmatch(_NAME, rest[1:]):
            raise InvalidPath(f"{text!r}: only '.subAttribute' may follow the value filter")
        sub_attr = rest[1:].lower()
    parser = _Parser(text[bracket + 1 : close], InvalidPath)
    if not parser.tokens:
        raise InvalidPath(f"{text!r}: empty value filter")
    inner = parser.parse_or(True)
    parser.finish()
    return PatchPath(attr, inner, sub_attr)
