"""Tolerant parsing of ``GET /v3/phone_numbers`` bodies.

The hot path at 100k lines: msgspec decodes the body straight into small typed structs
(about a third of the time and half the memory of a tree of dicts, and no pass over
dicts afterwards); one loop turns them into Observations. pydantic models would cost
~10x more here; the config keeps pydantic, where it helps.

Rules, from what is known of the API's drift:
- ``reputation`` is preferred; the deprecated ``health_status`` is used when it is absent.
- Unknown fields are ignored. Unknown status strings are kept verbatim.
- ``line_type`` (``iMessage`` | ``RCS``, optional) is kept when it is a short string
  (an unknown kind verbatim); anything else reads as not reported.
- An item that cannot be understood is skipped with a reason; its id and phone number (if
  readable) are reported so the caller keeps the line's last known state.
- An item whose id, phone number or status holds bytes that are not UTF-8 is skipped like
  any unreadable item (its id or phone number reported when those are clean); such bytes
  in a doc_url drop the link, and in a field nobody reads they do nothing. The other
  items count: one bad byte never fails the poll.
- A body that is not JSON, or not ``{"phone_numbers": [...]}``, raises ApiPayloadError:
  the whole poll fails and changes nothing.

The typed decode accepts only well-typed items, so one odd item makes it fail as a whole.
The body is then decoded again as a list of raw items, and each one goes through the
typed decoder or, failing that, the same rules applied to plain JSON values (_parse_item),
so an odd item is skipped alone and never costs the others.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from monitor.core.model import Observation
from monitor.errors import ApiPayloadError


@dataclass(frozen=True, slots=True)
class SkippedItem:
    index: int
    reason: str
    line_id: str | None
    phone_number: str | None


@dataclass(frozen=True, slots=True)
class PhoneNumberList:
    observations: list[Observation]
    skipped: list[SkippedItem]

    def protected(self) -> frozenset[str]:
        """Ids and phone numbers of skipped items: lines that must keep their state."""
        keys = {s.line_id for s in self.skipped if s.line_id}
        keys |= {s.phone_number for s in self.skipped if s.phone_number}
        return frozenset(keys)


# gc=False: these hold only strings and each other, never a cycle; leaving them out of the
# collector's lists saves 16 bytes each and keeps 200k objects out of its walks.
class _Reputation(msgspec.Struct, gc=False):
    status: str
    doc_url: str | None = None


class _Item(msgspec.Struct, gc=False):
    id: str
    phone_number: str
    reputation: _Reputation | None = None
    health_status: _Reputation | None = None
    # iMessage | RCS; Any so that an odd value costs only the field, not the typed decode.
    line_type: Any = None


class _Body(msgspec.Struct, gc=False):
    phone_numbers: list[_Item]
    # Pagination, should the list ever grow it (Linq's list endpoints that page say so
    # with these): Any, so that an odd value cannot make the whole body undecodable.
    next_cursor: Any = None
    has_more: Any = None


class _RawBody(msgspec.Struct, gc=False):
    phone_numbers: list[msgspec.Raw]
    next_cursor: Any = None
    has_more: Any = None


_BODY = msgspec.json.Decoder(_Body)
_RAW_BODY = msgspec.json.Decoder(_RawBody)
_ITEM = msgspec.json.Decoder(_Item)
_ANY = msgspec.json.Decoder()
# For monitor/api/recall.py, which decodes a steady answer's changed items only.
RAW_BODY_DECODER, ITEM_DECODER = _RAW_BODY, _ITEM

_LINE_TYPE_MAX = 32  # the width of lines.line_type
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_A_LIST = "response has no 'phone_numbers' list (shape changed?)"
_A_PAGE = ("response is one page of several (it carries next_cursor or has_more): the "
           "lines on the other pages would look removed, so this poll changes nothing")


def parse_phone_numbers(
    body: bytes | bytearray, *, trace_id: str | None = None
) -> PhoneNumberList:
    try:
        decoded = _BODY.decode(body)
        items: list[_Item] | list[msgspec.Raw] | list[Any] = decoded.phone_numbers
        _whole_list(decoded.next_cursor, decoded.has_more, trace_id)
    # ValidationError first: it is a DecodeError too.
    except msgspec.ValidationError:
        # Some item (or the envelope) is not the documented shape: go item by item, so one
        # bad item costs only itself.
        items = _raw_items(body, trace_id)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec up to 0.22 raised UnicodeDecodeError for a string that is not UTF-8;
        # 0.23 calls the whole document undecodable. Neither is a reason to drop the other
        # lines: a body that is valid JSON but for such strings goes the lenient way.
        if _is_utf8(body):
            raise _not_json(exc, trace_id) from None
        items = _lenient_items(body, trace_id)
    except RecursionError:
        raise _too_deep(trace_id) from None
    else:
        return _collect_typed(decoded.phone_numbers)
    return _collect(_consume(items))


def _raw_items(body: bytes | bytearray, trace_id: str | None) -> list[msgspec.Raw]:
    try:
        decoded = _RAW_BODY.decode(body)
    except msgspec.ValidationError:
        raise ApiPayloadError(_NOT_A_LIST, trace_id=trace_id) from None
    except msgspec.DecodeError as exc:
        raise _not_json(exc, trace_id) from None
    except RecursionError:
        raise _too_deep(trace_id) from None
    _whole_list(decoded.next_cursor, decoded.has_more, trace_id)
    return decoded.phone_numbers


def whole_list(next_cursor: Any, has_more: Any) -> bool:
    """False if the answer says more lines follow on another page."""
    return not (has_more is True or (isinstance(next_cursor, str) and next_cursor))


def _whole_list(next_cursor: Any, has_more: Any, trace_id: str | None) -> None:
    """Raise ApiPayloadError if the answer says more lines follow on another page."""
    if not whole_list(next_cursor, has_more):
        raise ApiPayloadError(_A_PAGE, trace_id=trace_id)


def _lenient_items(body: bytes | bytearray, trace_id: str | None) -> list[Any]:
    """The items of a body holding bytes that are not UTF-8, as plain JSON values.

    The bad bytes become lone surrogates (surrogateescape), which no valid text contains:
    an item whose id, phone number or status holds one is skipped by ``_collect``, and a
    bad byte outside any string leaves text that is not JSON. This path never depends on
    how a msgspec release treats such bytes.
    """
    try:
        document = json.loads(bytes(body).decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise ApiPayloadError(f"response is not JSON ({exc})", trace_id=trace_id) from None
    except RecursionError:
        raise _too_deep(trace_id) from None
    items = document.get("phone_numbers") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise ApiPayloadError(_NOT_A_LIST, trace_id=trace_id)
    _whole_list(document.get("next_cursor"), document.get("has_more"), trace_id)
    return items


def _is_utf8(body: bytes | bytearray) -> bool:
    try:
        codecs.decode(body, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _too_deep(trace_id: str | None) -> ApiPayloadError:
    return ApiPayloadError("response is nested too deeply to be a phone number list",
                           trace_id=trace_id)


def _not_json(exc: Exception, trace_id: str | None) -> ApiPayloadError:
    return ApiPayloadError(f"response is not JSON ({exc})", trace_id=trace_id)


def _consume(items: list[_Item] | list[msgspec.Raw] | list[Any]) -> Iterable[Any]:
    """Yield the items, letting go of each one as it is read (reverse once, pop from the end).

    The decoded items are freed while the observations are built, so the two are never
    both whole in memory.
    """
    items.reverse()
    while items:
        yield items.pop()


def _collect(items: Iterable[_Item | msgspec.Raw | Any]) -> PhoneNumberList:
    """Observations of the items (typed, raw or plain JSON values); the rest skipped."""
    observations: list[Observation] = []
    skipped: list[SkippedItem] = []
    seen: set[str] = set()
    # Statuses and doc URLs repeat across lines: share one string each instead of keeping
    # 100k equal copies alive in the line states.
    shared: dict[str, str] = {}
    for index, item in enumerate(items):
        try:
            value = _typed(item) if isinstance(item, msgspec.Raw) else item
        # 1e310, a string that is not UTF-8, or nesting past any use
        except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
            skipped.append(SkippedItem(index, "item is not readable JSON", None, None))
            continue
        result = observe(value, shared) if isinstance(value, _Item) else _parse_item(value)
        if isinstance(result, str):
            skipped.append(_skipped(index, value, result))
        elif result.line_id in seen:
            skipped.append(SkippedItem(index, "duplicate id", None, None))
        else:
            seen.add(result.line_id)
            observations.append(result)
    return PhoneNumberList(observations, skipped)


def _collect_typed(items: list[_Item]) -> PhoneNumberList:
    """``_collect`` for a body that decoded as typed items: the same result, with the
    common item (every field present) handled inline. At 100k lines this loop is a poll's
    largest cost after the decode itself, so it avoids a call per item."""
    observations: list[Observation] = []
    skipped: list[SkippedItem] = []
    seen: set[str] = set()
    shared: dict[str, str] = {}
    share, see, keep = shared.setdefault, seen.add, observations.append
    items.reverse()  # pop from the end: each struct is freed as soon as it is read
    pop = items.pop
    for index in range(len(items)):
        item = pop()
        reputation = item.reputation if item.reputation is not None else item.health_status
        line_id = item.id
        if not (line_id and item.phone_number and reputation is not None
                and reputation.status):
            result = _parse_item(msgspec.to_builtins(item))
            if isinstance(result, str):
                skipped.append(_skipped(index, item, result))
                continue
            line_id = result.line_id
        else:
            status, doc_url, kind = reputation.status, reputation.doc_url, item.line_type
            if kind is not None:  # iMessage | RCS: checked, then shared like the status
                kind = _line_type(kind)
                kind = None if kind is None else share(kind, kind)
            result = Observation(line_id, item.phone_number, share(status, status),
                                 None if doc_url is None else share(doc_url, doc_url), kind)
        if line_id in seen:
            skipped.append(SkippedItem(index, "duplicate id", None, None))
            continue
        see(line_id)
        keep(result)
    return PhoneNumberList(observations, skipped)


def _typed(raw: msgspec.Raw) -> _Item | Any:
    """The item as a typed struct, or as plain JSON values when it does not fit one."""
    try:
        return _ITEM.decode(raw)
    except msgspec.ValidationError:
        return _ANY.decode(raw)


def observe(item: _Item, shared: dict[str, str]) -> Observation | str:
    """The Observation of a typed item (its strings shared through ``shared``), or the
    reason it cannot be used: the fast path, and one with an empty field goes through
    the rules."""
    reputation = item.reputation if item.reputation is not None else item.health_status
    if not (item.id and item.phone_number and reputation is not None and reputation.status):
        return _parse_item(msgspec.to_builtins(item))
    status, doc_url = reputation.status, reputation.doc_url
    line_type = _line_type(item.line_type)
    return Observation(item.id, item.phone_number, shared.setdefault(status, status),
                       None if doc_url is None else shared.setdefault(doc_url, doc_url),
                       None if line_type is None else shared.setdefault(line_type, line_type))


def _parse_item(item: Any) -> Observation | str:
    """An Observation, or the reason the item cannot be used."""
    if not isinstance(item, dict):
        return "item is not an object"
    line_id = item.get("id")
    if not isinstance(line_id, str) or not line_id:
        return "missing 'id'"
    phone = item.get("phone_number")
    if not isinstance(phone, str) or not phone:
        return "missing 'phone_number'"
    reputation = item.get("reputation")
    if reputation is None:
        reputation = item.get("health_status")
    if reputation is None:
        return "neither 'reputation' nor 'health_status' present"
    if not isinstance(reputation, dict):
        return "'reputation' is not an object"
    status = reputation.get("status")
    if not isinstance(status, str) or not status:
        return "'reputation.status' is not a string"
    for name, value in (("id", line_id), ("phone_number", phone), ("status", status)):
        if not _is_text(value):
            return f"'{name}' holds bytes that are not UTF-8"
    doc_url = reputation.get("doc_url")
    if doc_url is not None and not (isinstance(doc_url, str) and _is_text(doc_url)):
        doc_url = None
    return Observation(line_id, phone, status, doc_url, _line_type(item.get("line_type")))


def _line_type(value: Any) -> str | None:
    """The line type if it is one a column and a metric label can hold, else None."""
    if isinstance(value, str) and 0 < len(value) <= _LINE_TYPE_MAX and _is_text(value):
        return value
    return None


def _is_text(value: str) -> bool:
    """False for a string holding a lone surrogate: a byte that was not UTF-8."""
    return value.isascii() or _SURROGATE.search(value) is None


def _skipped(index: int, item: Any, reason: str) -> SkippedItem:
    line_id = phone = None
    if isinstance(item, _Item):
        item = msgspec.to_builtins(item)
    if isinstance(item, dict):
        raw_id, raw_phone = item.get("id"), item.get("phone_number")
        line_id = raw_id if isinstance(raw_id, str) and raw_id and _is_text(raw_id) else None
        phone = (raw_phone if isinstance(raw_phone, str) and raw_phone and _is_text(raw_phone)
                 else None)
    return SkippedItem(index, reason, line_id, phone)
