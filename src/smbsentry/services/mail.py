"""SMTP (25), IMAP (143) and the Lotus Notes ports (1352, 3264): banners and versions.

SMTP also tries what nmap's smtp-ntlm-info does when EHLO offers AUTH NTLM:
AUTH NTLM with an NTLMSSP NEGOTIATE, read the CHALLENGE (OS build, names),
then cancel with "*".  No credentials are sent.
"""

from __future__ import annotations

import base64
import re

from ..model import cap
from ..protocol import ntlm
from ..protocol.filetime import to_iso
from .common import ServiceError, close, connect, read_some, read_until, send, text


def _smtp_reply_done(buf: bytes) -> bool:
    lines = buf.split(b"\r\n")
    return len(lines) >= 2 and any(re.match(rb"^\d{3} ", ln) for ln in lines[:-1])


def exchange_version(banner: str, ehlo: list[str] | None = None) -> dict:
    """What the banner says about Exchange: {"product", "exchange", "version", "basis"}."""
    m = re.search(r"Microsoft Exchange Server (\d{4})", banner, re.I)
    if m:
        return {"product": "exchange", "exchange": m.group(1), "version": None, "basis": "banner names the release"}
    m = re.search(r"Microsoft ESMTP MAIL Service, Version: ([\d.]+)", banner)
    if m:
        v = m.group(1)
        rel = {"5.0": "2000", "6.0": "2003"}.get(".".join(v.split(".")[:2]))
        return {"product": "iis-smtp", "exchange": rel, "version": v,
                "basis": f"IIS SMTP service version {v} (the SMTP stack of Exchange {rel or 'before 2007'})"}
    if re.search(r"Microsoft ESMTP MAIL Service ready at", banner):
        return {"product": "exchange", "exchange": "2007+", "version": None,
                "basis": "Exchange 2007 or later banner (the release is not shown)"}
    return {"product": None, "exchange": None, "version": None, "basis": None}


async def probe_smtp(address: str, port: int = 25, timeout: float = 5.0, ntlm_info: bool = True) -> dict:
    reader, writer = await connect(address, port, timeout)
    try:
        banner = await read_until(reader, _smtp_reply_done, timeout, cap=4096)
        if not banner.startswith(b"220"):
            raise ServiceError(f"smtp: no 220 greeting: {text(banner[:80])!r}" if banner else "smtp: closed without a greeting")
        await send(writer, b"EHLO smbsentry.invalid\r\n", timeout)
        ehlo_raw = await read_until(reader, _smtp_reply_done, timeout, cap=16384)
        ehlo = [text(ln[4:]) for ln in ehlo_raw.split(b"\r\n") if ln[:3] == b"250"]
        out: dict = {"port": port, "banner": text(banner.split(b"\r\n")[0][4:]), "ehlo": ehlo[1:] if ehlo else []}
        auth = next((e for e in out["ehlo"] if e.upper().startswith("AUTH")), "")
        out["auth"] = auth.split()[1:] if auth else []
        if ntlm_info and "NTLM" in (a.upper() for a in out["auth"]):
            try:
                neg = base64.b64encode(ntlm.negotiate()).decode()
                await send(writer, f"AUTH NTLM {neg}\r\n".encode(), timeout)
                reply = await read_until(reader, _smtp_reply_done, timeout, cap=8192)
                if reply.startswith(b"334 "):
                    ch = ntlm.parse_challenge(base64.b64decode(reply[4:].split(b"\r\n")[0], validate=False))
                    out["ntlm"] = ntlm_facts(ch)
                    await send(writer, b"*\r\n", timeout)
                    await read_some(reader, timeout, 1024)
            except Exception as exc:  # noqa: BLE001 - the NTLM leg is a bonus
                out["ntlm_error"] = str(exc)[:200]
        await send(writer, b"QUIT\r\n", timeout)
    finally:
        await close(writer)
    out.update(exchange_version(out["banner"], out["ehlo"]))
    return out


def ntlm_facts(ch) -> dict:
    """The CHALLENGE's identity facts; its strings come from the network: capped and cleaned."""
    v = ch.version
    return {"os_version": f"{v.major}.{v.minor}" if v else None, "os_build": v.build if v else None,
            "netbios_name": cap(ch.av_text(1)), "netbios_domain": cap(ch.av_text(2)), "dns_name": cap(ch.av_text(3)),
            "dns_domain": cap(ch.av_text(4)), "dns_forest": cap(ch.av_text(5)), "target_name": cap(ch.target_name),
            "time": to_iso(ch.timestamp)}


def domino_version(banner: str) -> str | None:
    m = re.search(r"Domino IMAP4 Server Release ([\w.]+)", banner)
    return m.group(1) if m else None


async def probe_imap(address: str, port: int = 143, timeout: float = 5.0) -> dict:
    reader, writer = await connect(address, port, timeout)
    try:
        banner = await read_until(reader, lambda b: b"\r\n" in b, timeout, cap=4096)
        if not banner.startswith(b"* "):
            raise ServiceError(f"imap: no untagged greeting: {text(banner[:80])!r}" if banner else "imap: closed without a greeting")
        try:
            await send(writer, b"a1 LOGOUT\r\n", timeout)
        except ServiceError:
            pass
    finally:
        await close(writer)
    line = text(banner.split(b"\r\n")[0])
    v = domino_version(line)
    return {"port": port, "banner": line, "product": "domino" if v or "Domino" in line else None, "version": v}


async def probe_banner(address: str, port: int, timeout: float = 5.0, wait: float = 1.0) -> dict:
    """TCP connect, then whatever the service says first (Notes RPC says nothing)."""
    reader, writer = await connect(address, port, timeout)
    try:
        try:
            data = await read_some(reader, min(wait, timeout), 4096)
        except ServiceError:
            data = b""
    finally:
        await close(writer)
    return {"port": port, "open": True, "banner": text(data) or None}


async def probe_notes(address: str, ports: list[int], timeout: float = 5.0) -> dict:
    out: dict = {"ports": {}}
    for p in ports:
        try:
            out["ports"][str(p)] = await probe_banner(address, p, timeout)
        except ServiceError as exc:
            out["ports"][str(p)] = {"port": p, "open": False, "error": str(exc)}
    return out
