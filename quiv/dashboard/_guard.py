"""The dashboard's front door: authentication, CSRF, read-only mode, security headers.

Every request passes here before any route. The *auth* callable decides
whether the request may see the dashboard at all; then every method other
than GET and HEAD is refused in read-only mode, and otherwise needs the CSRF
token. The scheme is a double submit: the page's response sets a random
token in an ``HttpOnly``, ``SameSite=Strict`` cookie scoped to the mount
point and writes the same token into the page, whose script sends it back
in the ``X-CSRF-Token`` header; the two must be equal (compared in constant
time). A request from another site can neither read the token nor, with a
``SameSite=Strict`` cookie, send the cookie. A request whose ``Origin`` is
another host, or whose ``Sec-Fetch-Site`` says it comes from another site,
is refused as well.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("CSRF_COOKIE", "CSRF_HEADER", "Guard", "csrf_token")

logger = logging.getLogger("quiv.dashboard")

CSRF_COOKIE = "quiv_dashboard_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD"})

#: no inline script or style, nothing from another origin, no framing
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)

Auth = Callable[[Request], "bool | Awaitable[bool]"]

_NO_AUTH_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quiv dashboard: access denied</title></head>
<body><main><h1>Access denied</h1>
<p>This quiv dashboard refuses every request until its application passes an
<code>auth</code> callable, for example
<code>dashboard(scheduler, auth=lambda request: request.user.is_staff)</code>,
or <code>auth=quiv.dashboard.allow_all</code> for local development.</p>
</main></body></html>
"""


def csrf_token(request: Request) -> str:
    """The request's CSRF token: the cookie's, or a new one if it has none."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if (
        len(token) < 32
        or not token.isascii()
        or not token.replace("-", "").replace("_", "").isalnum()
    ):
        token = secrets.token_urlsafe(32)
    return token


def _same_origin(request: Request) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc == host


def _csrf_ok(request: Request) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not header:
        return False
    return hmac.compare_digest(cookie.encode(), header.encode()) and _same_origin(request)


class Guard:
    """ASGI middleware in front of the dashboard's routes."""

    def __init__(self, app: ASGIApp, auth: Auth | None, read_only: bool) -> None:
        self._app = app
        self._auth = auth
        self._read_only = read_only

    async def _allowed(self, request: Request) -> bool:
        if self._auth is None:
            return False
        try:
            verdict: Any = self._auth(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception:
            logger.exception("the dashboard's auth callable raised; the request is refused")
            return False
        return bool(verdict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._app(scope, receive, send)
            return  # websockets: none served

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        request = Request(scope)
        if not await self._allowed(request):
            if self._auth is None and request.method in _SAFE_METHODS:
                await _respond(send_with_headers, 403, _NO_AUTH_PAGE, "text/html; charset=utf-8")
            else:
                await _refuse(send_with_headers, 403, "not allowed")
            return
        if request.method not in _SAFE_METHODS:
            if self._read_only:
                await _refuse(send_with_headers, 403, "the dashboard is read-only")
                return
            if not _csrf_ok(request):
                await _refuse(send_with_headers, 403, "missing or wrong CSRF token")
                return
        await self._app(scope, receive, send_with_headers)


async def _refuse(send: Send, status: int, reason: str) -> None:
    await _respond(send, status, json.dumps({"error": reason}), "application/json")


async def _respond(send: Send, status: int, body: str, content_type: str) -> None:
    data = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
