"""Tolerant parsing of ``GET /v3/phone_numbers`` bodies.

The hot path at 100k lines: orjson decodes, then one cheap pass checks each item by
hand. (pydantic models cost ~10x more here; the config keeps pydantic, where it helps.)

Rules, from what is known of the API's drift:
- ``reputation`` is preferred; the deprecated ``health_status`` is used when it is absent.
- Unknown fields are ignored. Unknown status strings are kept verbatim.
- An item that cannot be understood is skipped with a reason; its id and phone number (if
  readable) are reported so the caller keeps the line's last known state.
- A body that is not JSON, or not ``{"phone_numbers": [...]}``, raises ApiPayloadError:
  the whole poll fails and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

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


def parse_phone_numbers(body: bytes, *, trace_id: str | None = None) -> PhoneNumberList:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiPayloadError(f"response is not JSON ({exc.msg})", trace_id=trace_id) from None
    items = document.get("phone_numbers") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise ApiPayloadError(
            "response has no 'phone_numbers' list (shape changed?)", trace_id=trace_id
        )
    del document
    observations: list[Observation] = []
    skipped: list[SkippedItem] = []
    seen: set[str] = set()
    # Statuses and doc URLs repeat across lines: share one string each instead of keeping
    # 100k equal copies alive in the line states.
    shared: dict[str, str] = {}
    # Consume the decoded items as we go (reverse once, then pop from the end), so each
    # item's dicts are freed as soon as it is read: the peak holds the decoded answer or
    # the observations, not both.
    items.reverse()
    index = -1
    while items:
        item = items.pop()
        index += 1
        # Fast path for a well-formed item (nearly all of them): a handful of dict lookups
        # and exact type checks. Anything unusual falls through to _parse_item, which
        # applies the same rules and says what is wrong.
        try:
            line_id = item["id"]
            phone = item["phone_number"]
            reputation = item.get("reputation")
            if reputation is None:
                reputation = item["health_status"]
            status = reputation["status"]
            doc_url = reputation.get("doc_url")
            well_formed = (type(line_id) is str and type(phone) is str and type(status) is str
                           and line_id and phone and status
                           and (doc_url is None or type(doc_url) is str))
        except (KeyError, TypeError, AttributeError):
            well_formed = False
        if well_formed:
            status = shared.setdefault(status, status)
            if doc_url is not None:
                doc_url = shared.setdefault(doc_url, doc_url)
            result: Observation | str = Observation(line_id, phone, status, doc_url)
        else:
            result = _parse_item(item)
        if isinstance(result, str):
            skipped.append(_skipped(index, item, result))
        elif result.line_id in seen:
            skipped.append(SkippedItem(index, "duplicate id", None, None))
        else:
            seen.add(result.line_id)
            observations.append(result)
    return PhoneNumberList(observations, skipped)


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
    doc_url = reputation.get("doc_url")
    if doc_url is not None and not isinstance(doc_url, str):
        doc_url = None
    return Observation(line_id, phone, status, doc_url)


def _skipped(index: int, item: Any, reason: str) -> SkippedItem:
    line_id = phone = None
    if isinstance(item, dict):
        raw_id, raw_phone = item.get("id"), item.get("phone_number")
        line_id = raw_id if isinstance(raw_id, str) and raw_id else None
        phone = raw_phone if isinstance(raw_phone, str) and raw_phone else None
    return SkippedItem(index, reason, line_id, phone)
