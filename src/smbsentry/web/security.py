"""What stands in front of every dashboard route, before any of them runs.

`Guard` is a plain ASGI middleware (it sees the request before FastAPI reads a byte of it):

- **Host allow-list.**  A request whose Host header names anything but the names the
  dashboard answers to gets 400.  By default those are the loopback names (localhost,
  127.0.0.0/8, ::1) and the address `smbsentry serve --host` listens on; `--public-url`
  and `--allowed-host` add more.  This is what stops DNS rebinding: a page on
  attacker.example that re-resolves its name to 127.0.0.1 still sends
  `Host: attacker.example`.
- **Body cap, before the body is read.**  `LOGIN_BODY_LIMIT` (4 KiB) for /login and
  /setup, `BODY_LIMIT` (64 KiB) for every other route.  A Content-Length above the cap is
  answered 413 at once, and the connection closed, without reading the body; a body
  without a length (chunked) is counted as it arrives and cut off at the cap with 413.
- **HEAD** is answered as GET without the body (FastAPI routes are GET only).
- **Security headers** (CSP, nosniff, frame denial, no referrer, no-store) on every
  response, error pages included; `error_response` builds the few responses made outside
  the routes (unknown Host, body too large, an unexpected error) with the same headers.

`bounded_ints` is a dependency of every route: an integer path or query parameter outside
what the store's columns hold (0 .. 2**31-1) is 404 (path) or 400 (query), never a 500
from the database.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import Request
from starlette.exceptions import HTTPException

LOGIN_BODY_LIMIT = 4 * 1024
BODY_LIMIT = 64 * 1024
LOGIN_PATHS = ("/login", "/setup")
MAX_INT = 2**31 - 1

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def body_limit(path: str) -> int:
    return LOGIN_BODY_LIMIT if path in LOGIN_PATHS else BODY_LIMIT


# ---------------------------------------------------------------- Host
def host_name(value: str) -> str:
    """The name of a Host header value, without its port, lower case ('[::1]:8080' -> '::1')."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def allowed_hosts(listen: str | None = None, public_url: str | None = None, extra: Iterable[str] = ()) -> set[str]:
    """The Host names the dashboard answers to: loopback, the listening address, --public-url, --allowed-host."""
    names = {"localhost", "::1"}
    if listen and listen not in ("0.0.0.0", "::"):
        names.add(listen.strip("[]").lower())
    if public_url:
        parts = urlsplit(public_url if "://" in public_url else f"https://{public_url}")
        if parts.hostname:
            names.add(parts.hostname.lower())
    for name in extra:
        for part in str(name).replace(",", " ").split():
            names.add(host_name(part))
    return names


def host_allowed(value: str | None, names: set[str]) -> bool:
    if not value:
        return False
    name = host_name(value)
    if name in names:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- responses made here
def _headers(content_type: bytes, length: int, close: bool) -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", content_type), (b"content-length", str(length).encode()), (b"cache-control", b"no-store")]
    out += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    if close:
        out.append((b"connection", b"close"))
    return out


async def error_response(send, status: int, text: str, close: bool = False) -> None:
    """A plain-text error sent straight from the middleware, with the security headers."""
    body = (text + "\n").encode("utf-8", "replace")
    await send({"type": "http.response.start", "status": status, "headers": _headers(b"text/plain; charset=utf-8", len(body), close)})
    await send({"type": "http.response.body", "body": body})


def with_headers(resp):
    """A response made outside the middleware (Starlette's 500 path), with the security headers."""
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    resp.headers.setdefault("cache-control", "no-store")
    return resp


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large (limit {limit} bytes for this page)")


class Guard:
    """The ASGI middleware described in the module's docstring."""

    def __init__(self, app, hosts: set[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {}
        for k, v in scope.get("headers") or []:
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        if not host_allowed(headers.get("host"), self.hosts):
            shown = repr(headers.get("host", ""))[:80]
            return await error_response(send, 400, f"400 Bad Request: this dashboard does not answer to the host {shown} "
                                                   "(smbsentry serve --allowed-host NAME or --public-url URL adds one)")
        limit = body_limit(scope.get("path", ""))
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                return await error_response(send, 400, "400 Bad Request: bad Content-Length", close=True)
            if int(length) > limit:
                # answered before a byte of the body is read; the connection closes, the body is never kept
                return await error_response(send, 413, f"413 Request body too large: {int(length)} bytes, "
                                                       f"the limit for this page is {limit}", close=True)
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        received = 0

        async def capped_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers") or []}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in have]
                if not scope.get("path", "").startswith("/static/") and b"cache-control" not in have:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*(message.get("headers") or []), *extra]}
            elif message["type"] == "http.response.body" and head:
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, capped_receive, guarded_send)


# ---------------------------------------------------------------- integer parameters
def bounded_ints(request: Request) -> None:
    """Integer path and query parameters of the matched route stay within 0..2**31-1 (see the module's docstring)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    for params, where, values in ((dependant.path_params, "path", request.path_params),
                                  (dependant.query_params, "query", request.query_params)):
        for p in params:
            if _int_type(p) and p.alias in values:
                raw = str(values[p.alias]).strip()
                if raw.lstrip("+-").isdigit() and not -MAX_INT <= _int(raw) <= MAX_INT:
                    if where == "path":
                        raise HTTPException(404, f"no such {p.alias.replace('_', ' ')}: {raw[:20]}...")
                    raise HTTPException(400, f"{p.alias} out of range (0 to {MAX_INT})")


def _int(raw: str) -> int:
    # a long digit string is out of range whatever it says (and int() of one costs time)
    return int(raw) if len(raw.lstrip("+-")) <= 12 else MAX_INT + 1


def _int_type(param) -> bool:
    ann = getattr(param.field_info, "annotation", None)
    return ann is int or int in getattr(ann, "__args__", ())
