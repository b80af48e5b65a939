"""Who may read the status page, and proof that a write came from one of its own forms.

- Read access follows the gate's token: with ``server.api_token_env`` set, a page needs
  either ``Authorization: Bearer <token>`` or the login cookie. The login form takes the
  token once and sets ``rm_auth`` = HMAC(token, purpose): HttpOnly, SameSite=Strict,
  Secure over https. The token itself is never stored in the browser or echoed; changing
  the token logs everyone out.
- CSRF: every page answer carries an ``rm_csrf`` cookie (random, HttpOnly,
  SameSite=Strict) and each form a hidden field HMAC(process key, that cookie). A POST
  whose field does not match its cookie, or whose ``Origin`` is another site, is refused
  with 403. The key is made per process: a restart only asks for a reload of the form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response

AUTH_COOKIE = "rm_auth"
CSRF_COOKIE = "rm_csrf"
_PURPOSE = b"reputation-monitor status page login v1"
FORM_TYPE = "application/x-www-form-urlencoded"


class PageAuth:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None
        self._session = (hmac.new(self._token, _PURPOSE, hashlib.sha256).hexdigest()
                         if self._token else None)
        self._key = secrets.token_bytes(32)

    @property
    def required(self) -> bool:
        return self._token is not None

    def signed_in(self, request: Request) -> bool:
        """True without a token; else whether the request carries the cookie or bearer."""
        if self._token is None or self._session is None:
            return True
        cookie = request.cookies.get(AUTH_COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self._session.encode()):
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self._token)

    def token_matches(self, candidate: str) -> bool:
        return self._token is not None and hmac.compare_digest(candidate.encode(), self._token)

    def sign_in(self, response: Response, request: Request) -> None:
        assert self._session is not None
        response.set_cookie(AUTH_COOKIE, self._session, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")

    def sign_out(self, response: Response) -> None:
        response.delete_cookie(AUTH_COOKIE, path="/", httponly=True, samesite="strict")

    def csrf_cookie(self, request: Request) -> tuple[str, bool]:
        """The request's CSRF cookie value, or a new one (and True: it must be set)."""
        value = request.cookies.get(CSRF_COOKIE, "")
        if len(value) == 43 and value.replace("-", "").replace("_", "").isalnum():
            return value, False
        return secrets.token_urlsafe(32), True

    def csrf_token(self, cookie: str) -> str:
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    def set_csrf_cookie(self, response: Response, request: Request, cookie: str) -> None:
        response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")

    def csrf_ok(self, request: Request, form: dict[str, str]) -> bool:
        origin = request.headers.get("origin")
        # Only the host is compared: behind a TLS-terminating proxy the scheme differs.
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            return False
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = form.get("csrf", "")
        return bool(cookie and sent) and hmac.compare_digest(sent, self.csrf_token(cookie))


async def read_form(request: Request) -> dict[str, str] | None:
    """A urlencoded form body as a dict (first value of each field); None for any other
    content type. The guard has already bounded the body's size."""
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM_TYPE:
        return None
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        fields = parse_qs(body, max_num_fields=50)
    except ValueError:  # more fields than any of our forms has: nothing is taken from it
        return {}
    return {key: values[0] for key, values in fields.items()}
