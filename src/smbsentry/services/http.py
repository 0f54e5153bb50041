"""HTTP (IIS WebDAV on 80, MDaemon WorldClient on 1000/3000): GET, OPTIONS, PROPFIND Depth 0;
HTTPS on 443: GET only.

PROPFIND with Depth: 0 and an empty body asks for the properties of / and
changes nothing; a 207 Multi-Status answer means WebDAV is on.

On 80 and 443 the probe also asks GET /certsrv/ without credentials: AD CS
web enrollment lives there, and when it answers 401 offering NTLM it is the
NTLM relay target of ESC8 (a relayed domain controller's logon buys a
certificate for it).  No credentials are ever sent; over TLS the certificate
is read, not checked (services.common.tls_context).
"""

from __future__ import annotations

import re

from .common import ServiceError, close, connect, read_until, send, text

MAX_HEADERS = 100


def request(method: str, host: str, path: str = "/", extra: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: smbsentry", "Accept: */*", "Connection: close"]
    for k, v in (extra or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _complete(buf: bytes) -> bool:
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return bool(m) and len(body) >= int(m.group(1))


def parse_response(data: bytes) -> dict:
    """{"status", "reason", "headers" (lower-case names, values joined), "body", "title"}."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    if not lines:
        raise ServiceError("http: empty answer")
    m = re.match(r"HTTP/(\d\.\d)\s+(\d{3})\s*(.*)", lines[0])
    if not m:
        raise ServiceError(f"http: not an HTTP answer: {text(data[:60].encode() if isinstance(data, str) else data[:60])!r}")
    headers: dict[str, str] = {}
    for line in lines[1:MAX_HEADERS]:
        if ":" in line:
            k, v = line.split(":", 1)
            k = k.strip().lower()
            headers[k] = (headers[k] + ", " if k in headers else "") + text(v.strip().encode("latin-1"), 512)
    t = re.search(rb"(?is)<title>(.*?)</title>", body[:65536])
    return {"status": int(m.group(2)), "reason": m.group(3).strip()[:64], "headers": headers,
            "body": body, "title": text(t.group(1)) if t else None}


AUTH_SCHEMES = ("NTLM", "Negotiate", "Kerberos", "Basic", "Digest", "Bearer")


def auth_schemes(value: str | None) -> list[str]:
    """The authentication schemes a WWW-Authenticate value offers (several headers arrive joined by ", ").

    A scheme is a token at the start of the value or after a comma; the
    parameters of Digest or Bearer (realm="a, b") are not schemes, and only
    the known names count, so a hostile header cannot add one."""
    found = []
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', (value or "")[:2048])
    for m in re.finditer(r"(?:^|,)\s*([A-Za-z][A-Za-z0-9-]*)(?=\s|,|$)", bare):
        name = next((s for s in AUTH_SCHEMES if s.lower() == m.group(1).lower()), None)
        if name and name not in found:
            found.append(name)
    return found


async def exchange(address: str, port: int, req: bytes, timeout: float, tls: bool = False) -> dict:
    reader, writer = await connect(address, port, timeout, tls=tls)
    try:
        await send(writer, req, timeout)
        data = await read_until(reader, _complete, timeout)
    finally:
        await close(writer)
    if not data:
        raise ServiceError("http: connection closed without an answer")
    return parse_response(data)


def _server_version(server: str | None) -> tuple[str | None, str | None]:
    if not server:
        return None, None
    m = re.search(r"Microsoft-IIS/([\d.]+)", server)
    if m:
        return "iis", m.group(1)
    m = re.search(r"WDaemon/([\d.]+)", server)
    if m:
        return "wdaemon", m.group(1)
    return None, None


CERTSRV = "/certsrv/"


async def certsrv(address: str, port: int, timeout: float, tls: bool = False) -> dict:
    """GET /certsrv/ with no credentials: {"path", "status", "auth"} (auth only when offered).

    A failure is kept as {"path", "error"}: the page is a second question, and
    its failure must not lose what GET / learned."""
    try:
        res = await exchange(address, port, request("GET", address, CERTSRV), timeout, tls)
    except ServiceError as exc:
        return {"path": CERTSRV, "error": str(exc)[:200]}
    out: dict = {"path": CERTSRV, "status": res["status"]}
    schemes = auth_schemes(res["headers"].get("www-authenticate"))
    if schemes:
        out["auth"] = schemes
    return out


async def probe_https(address: str, port: int = 443, timeout: float = 5.0) -> dict:
    """GET / and GET /certsrv/ over TLS (no WebDAV questions: the relay paths need only the schemes)."""
    out = await probe(address, port, timeout, webdav=False, tls=True)
    out["tls"] = True
    return out


async def probe(address: str, port: int = 80, timeout: float = 5.0, webdav: bool = True, tls: bool = False,
                enrollment: bool = True) -> dict:
    """GET / then (webdav) OPTIONS / and PROPFIND / Depth 0, then (enrollment) GET /certsrv/."""
    get = await exchange(address, port, request("GET", address), timeout, tls)
    server = get["headers"].get("server")
    product, version = _server_version(server)
    out: dict = {"port": port, "status": get["status"], "server": server, "title": get["title"],
                 "product": product, "version": version}
    schemes = auth_schemes(get["headers"].get("www-authenticate"))
    if schemes:
        out["auth"] = schemes  # NTLM here (or in Negotiate) is an NTLM relay target unless EPA binds it to TLS
    if enrollment:
        out["certsrv"] = await certsrv(address, port, timeout, tls)
    if not webdav:
        return out
    errors = []
    try:
        opt = await exchange(address, port, request("OPTIONS", address), timeout)
        h = opt["headers"]
        out.update(options_status=opt["status"], allow=h.get("allow") or h.get("public"), dav=h.get("dav"),
                   ms_author_via=h.get("ms-author-via"))
    except ServiceError as exc:
        errors.append(f"OPTIONS: {exc}")
        out.update(options_status=None, allow=None, dav=None, ms_author_via=None)
    try:
        pf = await exchange(address, port, request("PROPFIND", address, extra={"Depth": "0", "Content-Length": "0"}), timeout)
        out["propfind_status"] = pf["status"]
    except ServiceError as exc:
        errors.append(f"PROPFIND: {exc}")
        out["propfind_status"] = None
    allow = (out.get("allow") or "").upper()
    out["webdav"] = out["propfind_status"] == 207 or bool(out.get("dav")) or "PROPFIND" in allow.replace(" ", "").split(",")
    out["webdav_evidence"] = ("PROPFIND / answered 207 Multi-Status" if out["propfind_status"] == 207
                              else f"DAV: {out['dav']}" if out.get("dav") else None)
    if errors:
        out["warnings"] = errors
    return out


async def probe_worldclient(address: str, port: int = 3000, timeout: float = 5.0) -> dict:
    out = await probe(address, port, timeout, webdav=False, enrollment=False)
    title = out.get("title") or ""
    out["worldclient"] = out["product"] == "wdaemon" or "worldclient" in title.lower()
    return out
