"""The Linq API client: httpx, retries with backoff, Retry-After, errors mapped to ours.

Retry policy follows Linq's official SDKs: retry connection errors, timeouts, 408, 409,
429 and >= 500 up to ``max_retries`` times; obey ``x-should-retry``, ``retry-after-ms``
and ``Retry-After`` (seconds or HTTP date); otherwise back off exponentially from 0.5 s,
capped at 8 s, with up to 25 % jitter. A server asking us to wait longer than
``MAX_INLINE_WAIT`` ends the attempt with ApiRateLimited, so the scheduler (not a
sleeping coroutine) waits out the delay.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from monitor import __version__
from monitor.api.chats import PAGE_LIMIT, ChatPage, parse_chat_page
from monitor.api.gcpause import gc_paused
from monitor.api.payload import PhoneNumberList
from monitor.api.recall import ItemRecall, parse_recalled
from monitor.errors import ApiAuthError, ApiError, ApiRateLimited

log = logging.getLogger(__name__)

MAX_INLINE_WAIT = 30.0
_RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class ListResult:
    lines: PhoneNumberList
    trace_id: str | None
    attempts: int


def tls_verify(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """What every client of the Linq API verifies TLS with: always on (there is no switch);
    a custom CA bundle replaces the system store. create_default_context verifies the chain
    and the host name."""
    return ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True


class LinqClient:
    """One partner account's view of the API. Use as an async context manager."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float = 60.0,
        max_retries: int = 2,
        ca_bundle: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._max_retries = max_retries
        self._deadline = timeout
        # The previous answer's items: a steady poll decodes only the changed ones.
        self._recall = ItemRecall()
        # The list's body buffer, kept for the next poll (None while a poll uses it): a
        # new ~26 MB buffer each poll landed wherever the heap had room, and now and then
        # it had none, so the peak RSS was the steady one plus a whole body (+25 MB at
        # 100k lines); allocating it fresh with mmap instead costs ~0.07 s of CPU a poll
        # in page faults (bench/RESULTS.md, "RSS and steady CPU").
        self._buffer: bytearray | None = None
        verify = tls_verify(ca_bundle)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"linq-reputation-monitor/{__version__}",
            },
            timeout=httpx.Timeout(timeout),
            verify=verify,
            follow_redirects=False,
            transport=transport,
        )

    async def __aenter__(self) -> LinqClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def list_phone_numbers(self) -> ListResult:
        """Fetch and parse every line of the account.

        Raises ApiAuthError (401/403), ApiRateLimited (429 beyond retries or a long wait),
        ApiPayloadError (not JSON / wrong shape) or ApiError (anything else).
        """
        buffer, self._buffer = self._buffer, None
        try:
            response, body, attempts = await self._get("/v3/phone_numbers", buffer=buffer)
        except BaseException:
            self._buffer = buffer
            raise
        trace_id = response.headers.get("x-trace-id")
        del response
        try:
            # Off the event loop: at 100k lines parsing takes ~0.3 s of CPU, and /metrics
            # scrapes must not wait for it.
            lines = await asyncio.to_thread(_parse, body, trace_id, self._recall)
        finally:
            self._buffer = body
        return ListResult(lines=lines, trace_id=trace_id, attempts=attempts)

    async def list_chats(self, *, cursor: str | None = None, limit: int = PAGE_LIMIT,
                         line: str | None = None, retry: bool = False) -> ChatPage:
        """One page of ``GET /v3/chats`` (every line's chats unless `line` is given).

        Without `retry` it makes exactly one request: the chat sweep spends a request
        budget and waits out a Retry-After on its own schedule. Raises as
        `list_phone_numbers` does; an ApiRateLimited carries the server's Retry-After.
        """
        params = {"limit": str(limit)}
        if cursor is not None:
            params["cursor"] = cursor
        if line is not None:
            params["from"] = line
        response, body, _ = await self._get("/v3/chats", params=params,
                                            max_retries=None if retry else 0)
        trace_id = response.headers.get("x-trace-id")
        return parse_chat_page(body, trace_id=trace_id)

    async def _get(self, path: str, *, params: dict[str, str] | None = None,
                   max_retries: int | None = None, buffer: bytearray | None = None,
                   ) -> tuple[httpx.Response, bytearray, int]:
        """The successful response (already closed), its body and the attempts it took.

        ``buffer``: read the body into this one (resized) when the length is known."""
        retries = self._max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            attempt += 1
            try:
                # httpx's timeout bounds each network operation; a body trickling in a byte
                # at a time never trips it, so the whole attempt gets a deadline too.
                async with asyncio.timeout(self._deadline):
                    response, body = await self._fetch(path, params, buffer)
            except TimeoutError:
                error: ApiError = ApiError(f"no complete answer within {self._deadline:.0f}s")
                wait = None
            except httpx.TimeoutException as exc:
                error = ApiError(f"timed out ({type(exc).__name__})")
                wait = None
            except httpx.TransportError as exc:
                error = ApiError(f"connection failed: {_transport_reason(exc)}")
                wait = None
            else:
                if response.is_success:
                    return response, body, attempt
                error = _error_from_response(response)
                if not _should_retry(response):
                    raise error
                wait = _retry_after(response)
                if wait is not None and wait > MAX_INLINE_WAIT:
                    raise _rate_limited(error, wait)
            if attempt > retries:
                if isinstance(error, ApiRateLimited) or error.status == 429:
                    raise _rate_limited(error, wait)
                raise error
            delay = wait if wait is not None else _backoff(attempt)
            log.info("retrying GET %s in %.1fs after: %s", path, delay, error,
                     extra={"trace_id": error.trace_id})
            await asyncio.sleep(delay)


    async def _fetch(self, path: str, params: dict[str, str] | None = None,
                     buffer: bytearray | None = None) -> tuple[httpx.Response, bytearray]:
        """GET ``path``; a success's body is read into one buffer of our own.

        httpx's ``.content`` collects the body in chunks and then joins them, two copies of
        a ~34 MB answer at 100k lines, and keeps it on the response, which httpx's objects
        hold in a reference cycle: each poll's body stayed alive until a full garbage
        collection, which at this heap size comes every several polls. Our buffer is
        freed as soon as the parse is done with it. Error bodies are small; httpx reads
        those as usual.
        """
        async with self._http.stream("GET", path, params=params) as response:
            if not response.is_success:
                await response.aread()
                return response, bytearray()
            return response, await _read_body(response, buffer)


async def _read_body(response: httpx.Response, buffer: bytearray | None = None) -> bytearray:
    """The whole (decoded) body; sized up front when the server says how long it is, in
    ``buffer`` (resized) if given."""
    length = response.headers.get("content-length", "")
    identity = response.headers.get("content-encoding", "identity") == "identity"
    if not (identity and length.isdigit()):
        grown = bytearray()
        async for chunk in response.aiter_bytes():
            grown += chunk
        return grown
    body = _sized(buffer, int(length))
    filled = 0
    with memoryview(body) as view:
        async for chunk in response.aiter_bytes():
            end = filled + len(chunk)
            if end > len(body):  # h11 enforces Content-Length; this is only a guard
                raise httpx.RemoteProtocolError("body longer than its Content-Length")
            view[filled:end] = chunk
            filled = end
    del body[filled:]
    return body


def _sized(buffer: bytearray | None, length: int) -> bytearray:
    """A buffer of ``length`` bytes: ``buffer`` resized in place, or a new one."""
    if buffer is None:
        return bytearray(length)
    try:
        if len(buffer) > length:
            del buffer[length:]
        elif len(buffer) < length:
            buffer[len(buffer):] = bytes(length - len(buffer))
    except BufferError:  # still exported (a view outlived its parse): do not touch it
        return bytearray(length)
    return buffer


def _parse(body: bytearray, trace_id: str | None, recall: ItemRecall) -> PhoneNumberList:
    with gc_paused():
        return parse_recalled(body, recall, trace_id=trace_id)


def _should_retry(response: httpx.Response) -> bool:
    override = response.headers.get("x-should-retry")
    if override == "true":
        return True
    if override == "false":
        return False
    return response.status_code in _RETRY_STATUSES or response.status_code >= 500


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait, if it said."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return _body_retry_after(response)
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _body_retry_after(response: httpx.Response) -> float | None:
    """``error.retry_after`` (seconds) of Linq's error envelope: a 429 carries it, and it is
    the only advice left when a proxy strips the Retry-After header."""
    if response.status_code != 429:
        return None
    try:
        envelope = orjson.loads(response.content)
    except (orjson.JSONDecodeError, httpx.ResponseNotRead):
        return None
    error = envelope.get("error") if isinstance(envelope, dict) else None
    seconds = error.get("retry_after") if isinstance(error, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return float(min(seconds, 86400))
    return None


def _backoff(attempt: int) -> float:
    base: float = min(0.5 * 2.0 ** (attempt - 1), 8.0)
    return base * (1 - 0.25 * random.random())


def _error_from_response(response: httpx.Response) -> ApiError:
    trace_id = response.headers.get("x-trace-id")
    status = response.status_code
    detail = ""
    try:
        envelope = orjson.loads(response.content)
        error = envelope.get("error") if isinstance(envelope, dict) else None
        if isinstance(error, dict):
            detail = f" (code {error.get('code')}: {error.get('message')})"
        if isinstance(envelope, dict) and not trace_id:
            trace_id = envelope.get("trace_id")
    except orjson.JSONDecodeError:
        pass
    if status in (401, 403):
        return ApiAuthError(
            f"the API rejected the token: HTTP {status}{detail}; check the account's token",
            status=status, trace_id=trace_id, permanent=True,
        )
    if status == 429:
        return ApiRateLimited(f"rate limited: HTTP 429{detail}",
                              retry_after=_retry_after(response), trace_id=trace_id)
    return ApiError(f"HTTP {status}{detail}", status=status, trace_id=trace_id,
                    permanent=400 <= status < 500 and status not in _RETRY_STATUSES)


def _rate_limited(error: ApiError, wait: float | None) -> ApiRateLimited:
    return ApiRateLimited(str(error), retry_after=wait, trace_id=error.trace_id)


def _transport_reason(exc: httpx.TransportError) -> str:
    """What failed and where: the host and port the API's URL resolves to, so a wrong
    ``base_url`` or a firewall shows at a glance. httpx messages can include the URL but
    never headers, so the token cannot leak here."""
    reason = str(exc) or type(exc).__name__
    try:
        url = exc.request.url
    except RuntimeError:  # raised outside a request: no URL to name
        return reason
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"cannot reach {url.host}:{port}: {reason}"


