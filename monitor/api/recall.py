"""Parsing a steady answer: items the previous answer already held are not decoded again.

Between two polls of a large fleet nearly every item of ``GET /v3/phone_numbers`` is the
same bytes as before (at 100k lines a poll sees ~150 changes). ``ItemRecall`` remembers,
by a hash of each item's bytes, the Observation it decoded to; ``parse_recalled`` splits
the body into raw items (no strings are built), reuses the remembered Observation of every
item whose bytes it has seen, and decodes only the others. At 100k lines that is about a
third of the CPU of decoding every item, and the transient memory of a poll drops from
the decoded structs of every item (~50 MB) to one small object per item.

The result is the one ``parse_phone_numbers`` returns for the same body: an item's
Observation depends on its bytes alone, and whenever this path meets anything but
well-formed items with unique ids (an item to skip, a duplicate, bytes that are not
UTF-8, a body that is not a list), it hands the whole body to ``parse_phone_numbers``,
whose rules then decide, and forgets what it remembered. Items are matched by Python's
64-bit hash of their bytes (keyed per process): a changed item taken for another is a
chance under one in 10^12 per poll at 100k lines.
"""

from __future__ import annotations

from array import array
from operator import itemgetter
from typing import cast

import msgspec

from monitor.api.payload import (
    ITEM_DECODER,
    RAW_BODY_DECODER,
    PhoneNumberList,
    observe,
    parse_phone_numbers,
    whole_list,
)
from monitor.core.model import Observation


class ItemRecall:
    """What the previous answer's items decoded to: the hash of each item's bytes and its
    Observation, by position (Linq lists the lines in a stable order, so an item is
    looked for where it was first; by hash only when many are not there).

    One per account (its client's), sharing the Observation objects the poller's line
    states were built from: ~10 MB at 100k lines. Not thread-safe; a client parses one
    answer at a time.
    """

    __slots__ = ("_keys", "_observations")

    def __init__(self) -> None:
        self._keys = array("q")
        self._observations: list[Observation] = []

    def __len__(self) -> int:
        return len(self._observations)

    def forget(self) -> None:
        self._keys, self._observations = array("q"), []


def parse_recalled(body: bytes | bytearray, recall: ItemRecall, *,
                   trace_id: str | None = None) -> PhoneNumberList:
    """``parse_phone_numbers(body)``, decoding only the items ``recall`` has not seen.

    Raises ApiPayloadError as ``parse_phone_numbers`` does. Updates ``recall`` to this
    body's items (empties it when the body took the general path).
    """
    parsed = _fast(body, recall)
    if parsed is None:
        recall.forget()
        return parse_phone_numbers(body, trace_id=trace_id)
    return parsed


def _fast(body: bytes | bytearray, recall: ItemRecall) -> PhoneNumberList | None:
    """The parse when every item is well-formed with a unique id, else None."""
    try:
        decoded = RAW_BODY_DECODER.decode(body)
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return None
    if not whole_list(decoded.next_cursor, decoded.has_more):
        return None
    items = decoded.phone_numbers
    del decoded
    keys = array("q", map(hash, map(bytes, items)))
    old_keys, old = recall._keys, recall._observations
    found: list[Observation | None] = [
        observation if key == old_key else None
        for key, old_key, observation in zip(keys, old_keys, old, strict=False)]
    found += [None] * (len(keys) - len(found))
    misses = [index for index, observation in enumerate(found) if observation is None]
    moved = len(misses) > len(keys) // _MOVED
    if moved:  # lines came or went in the middle of the list: look items up by hash
        by_key = dict(zip(old_keys, old, strict=True))
        for index in misses:
            found[index] = by_key.get(keys[index])
        del by_key
        misses = [index for index, observation in enumerate(found) if observation is None]
    # Only the items to decode are needed now: let go of the others' raw objects.
    to_decode = [items[index] for index in misses]
    del items
    shared: dict[str, str] = {}
    for index, raw in zip(misses, to_decode, strict=True):  # new or changed items
        try:
            item = ITEM_DECODER.decode(raw)
        except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
            return None
        result = observe(item, shared)
        if isinstance(result, str):
            return None
        found[index] = result
    del to_decode
    observations = cast("list[Observation]", found)
    # A remembered item found in its place is one of the previous answer's, whose ids
    # were distinct, so only a decoded item can repeat an id; one found by hash may be
    # found twice (a line listed twice), so then every id is checked.
    if moved:
        if len(set(map(_line_id, observations))) != len(observations):
            return None
    elif misses:
        new_ids = {observations[index].line_id for index in misses}
        if len(new_ids) != len(misses) or sum(
                map(new_ids.__contains__, map(_line_id, observations))) != len(misses):
            return None
    recall._keys, recall._observations = keys, observations
    return PhoneNumberList(observations, [])


_line_id = itemgetter(0)  # Observation.line_id
# More than 1 in _MOVED items not where they were: look them up by hash instead.
_MOVED = 100
