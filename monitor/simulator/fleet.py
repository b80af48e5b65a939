"""The simulated lines themselves, and their 200 body rendered at most once per change.

Not thread-safe on its own: `Simulator` owns one `Fleet` and guards it with its lock. The
body cache is the point of this class: at 100,000 lines a render costs tens of milliseconds
and a benchmark polls far more often than the fleet changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.simulator.scenario import LegacyMode, LineSpec, default_line_id
from monitor.simulator.wire import DEFAULT_LINE_TYPE, make_item, make_reputation, render_fleet

# "+1" and ten digits: the length of a North American number, what add_generated pads to.
_NANP_LENGTH = 12
_E164_MAX_LENGTH = 16


class Fleet:
    """Lines in list order, addressable by id or phone number."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}  # id -> item in the API's current shape
        self._id_by_phone: dict[str, str] = {}
        self._next_index: dict[str, int] = {}  # add_generated counter per prefix
        self._bodies: dict[LegacyMode, bytes] = {}
        self._render_count = 0

    @property
    def render_count(self) -> int:
        return self._render_count

    def reset(self, specs: Iterable[LineSpec]) -> None:
        """Replace every line with `specs`."""
        self._items.clear()
        self._id_by_phone.clear()
        self._bodies.clear()
        for spec in specs:
            self.add_spec(spec)

    def add_spec(self, spec: LineSpec) -> str:
        """Append a line as a scenario declares it; see `add`."""
        return self.add(
            spec.phone_number,
            line_id=spec.id,
            status=spec.status,
            doc_url=spec.doc_url,
            forwarding_number=spec.forwarding_number,
            line_type=spec.line_type,
        )

    def add(
        self,
        phone_number: str,
        *,
        line_id: str | None = None,
        status: str = "HEALTHY",
        doc_url: str | None = None,
        forwarding_number: str | None = None,
        line_type: str | None = DEFAULT_LINE_TYPE,
    ) -> str:
        """Append a line; returns its id. Raises ValueError if the phone or id exists."""
        line_id = line_id or default_line_id(phone_number)
        if phone_number in self._id_by_phone or line_id in self._items:
            raise ValueError(f"line {phone_number} (id {line_id}) already exists")
        reputation = make_reputation(status, doc_url)
        self._items[line_id] = make_item(line_id, phone_number, reputation, forwarding_number,
                                          line_type)
        self._id_by_phone[phone_number] = line_id
        self._bodies.clear()
        return line_id

    def add_generated(self, count: int, *, status: str, prefix: str) -> list[str]:
        """Append `count` lines numbered `prefix` + zero-padded counter; returns their ids.

        Numbers are padded to twelve characters (a North American E.164 number) and the
        counter continues across calls with the same prefix. Raises ValueError (nothing
        added) when the numbers would not fit E.164 or one already exists.
        """
        if count < 0:
            raise ValueError("count must not be negative")
        start = self._next_index.get(prefix, 1)
        width = max(_NANP_LENGTH - len(prefix), len(str(start + count - 1)))
        if len(prefix) + width > _E164_MAX_LENGTH:
            raise ValueError(f"{count} lines do not fit E.164 after prefix {prefix!r}")
        phones = [f"{prefix}{index:0{width}d}" for index in range(start, start + count)]
        ids = [default_line_id(phone) for phone in phones]
        # Check first so a clash leaves the fleet untouched.
        clash = next((phone for phone in phones if phone in self._id_by_phone), None)
        clash = clash or next((i for i in ids if i in self._items), None)
        if clash is not None:
            raise ValueError(f"line {clash} already exists")
        self._next_index[prefix] = start + count
        # One shared reputation object: at 100,000 lines that is real memory saved.
        reputation = make_reputation(status)
        for phone, line_id in zip(phones, ids, strict=True):
            self._items[line_id] = make_item(line_id, phone, reputation, None)
            self._id_by_phone[phone] = line_id
        self._bodies.clear()
        return ids

    def find(self, phone_or_id: str) -> str | None:
        """The id of the line with this id or phone number, if there is one."""
        if phone_or_id in self._items:
            return phone_or_id
        return self._id_by_phone.get(phone_or_id)

    def phone(self, line_id: str) -> str:
        return str(self._items[line_id]["phone_number"])

    def resolve(self, phone_or_id: str) -> str:
        """Like `find`, but raises KeyError for an unknown line."""
        line_id = self.find(phone_or_id)
        if line_id is None:
            raise KeyError(f"no line {phone_or_id!r}")
        return line_id

    def set_status(self, line_id: str, status: str, doc_url: str | None = None) -> None:
        item = self._items[line_id]
        fresh = make_reputation(status, doc_url)
        if fresh != item["reputation"]:  # a no-op change keeps the cached body
            item["reputation"] = fresh
            self._bodies.clear()

    def remove(self, line_id: str) -> None:
        del self._id_by_phone[self._items.pop(line_id)["phone_number"]]
        self._bodies.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of every line in the API's item shape, in list order."""
        return [{**item, "reputation": dict(item["reputation"])} for item in self._items.values()]

    def body(self, legacy: LegacyMode) -> bytes:
        """The 200 body; the same bytes object until the fleet changes."""
        body = self._bodies.get(legacy)
        if body is None:
            body = render_fleet(list(self._items.values()), legacy)
            self._bodies[legacy] = body
            self._render_count += 1
        return body
