"""Hostile bodies for the payload parser, and the one property every body must satisfy.

Shared by tests/test_fuzz_parser.py (a bounded run in CI) and bench/fuzz.py (minutes of
it). Bodies are built three ways: real answers (the shared fixtures) mutated byte by byte
(flips, cuts, insertions, repeated slices), structurally valid JSON of arbitrary shape, and
pathological documents (deep nesting, huge numbers, odd encodings, long strings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import strategies as st

from monitor.api.payload import parse_phone_numbers
from monitor.errors import ApiPayloadError


def profiles(*, short: int, full: int) -> Any:
    """Parametrize a fuzz test by its number of examples: ``short`` in the fast suite,
    ``full`` marked slow (CI runs it after the fast suite, so every merge runs it)."""
    return pytest.mark.parametrize("examples", [
        pytest.param(short, id="short"), pytest.param(full, id="full", marks=pytest.mark.slow)])


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEEDS = [path.read_bytes() for path in sorted(FIXTURES.rglob("*.json"))
         if path.name != "status_updated.json"]

_INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_JSON = st.recursive(
    st.none() | st.booleans() | _INTS | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["id", "phone_number", "reputation", "health_status",
                                       "status", "doc_url", "phone_numbers"]) | st.text(),
                      children, max_size=5),
    max_leaves=30,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(body)))
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        if op == "flip" and at < len(body):
            body[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del body[at:]
        elif op == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=16)
                               | st.sampled_from([b"{", b"}", b"[", b"]", b",", b'"', b"\\",
                                                  b"null", b"\xff", b"\x00", b"\xed\xa0\x80"]))
        else:
            end = draw(st.integers(at, min(len(body), at + 64)))
            body[at:at] = body[at:end] * draw(st.integers(1, 4))
    return bytes(body)


def _nested(depth: int) -> bytes:
    return b'{"phone_numbers": [' + b"[" * depth + b"]" * depth + b"]}"


PATHOLOGICAL = st.one_of(
    st.integers(1, 5000).map(_nested),
    st.sampled_from([
        b'{"phone_numbers": [{"id": 1e999, "phone_number": -0, "reputation": {"status": 1}}]}',
        b'{"phone_numbers": [{"id": "\\ud800", "phone_number": "x", '
        b'"reputation": {"status": "\\u0000"}}]}',
        b'{"phone_numbers": [], "phone_numbers": {"x": 1}}',
        b'\xef\xbb\xbf{"phone_numbers": []}',
        b'{"phone_numbers": [NaN, Infinity, -Infinity]}',
        "{\"phone_numbers\": [\"\u2028\"]}".encode("utf-16"),
    ]),
    st.integers(1, 200_000).map(lambda n: b'{"phone_numbers": ["' + b"a" * n + b'"]}'),
)

BODIES = st.one_of(
    mutated(),
    st.lists(_JSON, max_size=8).map(lambda items: orjson.dumps({"phone_numbers": items})),
    _JSON.map(orjson.dumps),
    st.binary(max_size=512),
    PATHOLOGICAL,
)


class _Body(msgspec.Struct):
    phone_numbers: list[msgspec.Raw]


def check_body(body: bytes) -> None:
    """The parser's contract for any body: a result whose every item is accounted for,
    with usable ids and statuses, or ApiPayloadError; never any other exception."""
    try:
        parsed = parse_phone_numbers(body, trace_id="fuzz")
    except ApiPayloadError as exc:
        assert exc.trace_id == "fuzz"
        return
    ids = [o.line_id for o in parsed.observations]
    assert len(ids) == len(set(ids)), "an id observed twice"
    for o in parsed.observations:
        assert isinstance(o.line_id, str) and o.line_id
        assert isinstance(o.phone_number, str) and o.phone_number
        assert isinstance(o.status, str) and o.status
        assert o.doc_url is None or isinstance(o.doc_url, str)
    # Counted without decoding the items: a number like 1e310 is valid JSON that orjson
    # refuses, and the parser must skip such an item, not fail the poll.
    try:
        items = msgspec.json.decode(body, type=_Body).phone_numbers
    except (msgspec.MsgspecError, RecursionError):
        return  # too deep for this count; the parser itself answered without failing
    assert len(parsed.observations) + len(parsed.skipped) == len(items)
