"""Non-SMB services of a host, for the Shadow Brokers exposure checks.

Sans-I/O parsers (rdp, http, kerberos, mail, ldap; nbns's messages are protocol/nbns.py's) and small asyncio probes,
each with a timeout and a 64 KiB read cap.  `probe_services` runs the probes
for the ports asked and returns a JSON-able dict; a probe that fails leaves
{"error": reason} under its key, a service whose port was not asked is None.

Keys: rdp (3389), http (80), https (443: GET / and /certsrv/ over TLS), kerberos (88), smtp (25), imap (143),
notes (1352, 3264), worldclient (3000, 1000), nbns (UDP 137), ldap (389: the
anonymous rootDSE read that tells a domain controller; with `bind_probes`, the
opt-in binds of services.ldap_bind on a domain controller's 389 and 636), quic (UDP 443:
a QUIC Initial offering ALPN smb).  Which ports are looked at is knowledge:
kb/data/services.json, and the smb-over-quic entry's udp_ports.

DEFAULT_PORTS are the ports of the Shadow Brokers services (what
`Need.SERVICES` probes); QUIC_PORTS are asked by the smb-over-quic check
(`Need.QUIC`).  UDP_PORTS are never swept by TCP discovery.  443 is both
HTTPS (TCP) and QUIC (UDP): the caller's `skip` says which of them a scan
does not want.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

from ..kb.findings import meta
from ..kb.store import kb
from . import http, kerberos, ldap, ldap_bind, mail, nbns, rdp
from .common import RATE, READ_CAP, ServiceError

__all__ = ["ServiceError", "READ_CAP", "SERVICE_PORTS", "DEFAULT_PORTS", "QUIC_PORTS", "UDP_PORTS", "service_ports",
           "probe_services", "probe_one"]


def quic_ports() -> tuple[int, ...]:
    """SMB over QUIC's UDP ports: the knowledge base's (vulnerabilities.json smb-over-quic udp_ports)."""
    return tuple(meta("smb-over-quic")["udp_ports"])


def service_ports() -> dict[str, tuple[int, ...]]:
    """{service: its ports}, in probe order: knowledge, from kb/data/services.json (each with its source), and
    quic from the smb-over-quic entry. A copy: the caller may change it."""
    return dict(_service_ports())


@lru_cache(maxsize=1)
def _service_ports() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Made once per process (every host's probes read it), kept immutable."""
    return (*kb().service_ports.items(), ("quic", quic_ports()))


def __getattr__(name: str):
    """SERVICE_PORTS, DEFAULT_PORTS, QUIC_PORTS and UDP_PORTS, read from the KB when first asked (importing this
    package loads no data)."""
    if name == "SERVICE_PORTS":
        return service_ports()
    if name == "DEFAULT_PORTS":
        return frozenset(p for n, ps in service_ports().items() if n != "quic" for p in ps)
    if name == "QUIC_PORTS":
        return quic_ports()
    if name == "UDP_PORTS":
        return frozenset((*kb().service_ports["nbns"], *quic_ports()))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def probe_one(name: str, address: str, ports: list[int], timeout: float, realm: str | None = None,
                    port_map: dict[int, int] | None = None, bind_probes: bool = False,
                    server_name: str | None = None) -> dict:
    """One service; ServiceError (or {"error": ...} for notes/worldclient lists) when it failed.

    bind_probes (scan --allow-failed-logon): a domain controller's rootDSE is
    followed by the failed binds of services.ldap_bind, kept under "binds";
    server_name is sent as SNI by the QUIC probe."""
    pm = port_map or {}
    real = [pm.get(p, p) for p in ports]
    if name == "rdp":
        return await rdp.probe(address, real[0], timeout)
    if name in ("http", "https"):
        res = await (http.probe if name == "http" else http.probe_https)(address, real[0], timeout)
        res["port"] = ports[0]  # the port asked, as worldclient's (port_map only moves where tests listen)
        return res
    if name == "kerberos":
        return await kerberos.probe(address, real[0], timeout, realm)
    if name == "smtp":
        return await mail.probe_smtp(address, real[0], timeout)
    if name == "imap":
        return await mail.probe_imap(address, real[0], timeout)
    if name == "nbns":
        return await nbns.probe(address, real[0], timeout)
    if name == "ldap":
        facts = await ldap.probe(address, real[0], timeout)
        if bind_probes and facts.get("domain_controller"):
            facts["binds"] = await ldap_bind.probe(address, timeout, facts["attributes"], port_map=pm)
        return facts
    if name == "quic":
        from . import quic  # aioquic is loaded only when SMB over QUIC is probed

        out = await quic.probe(address, real[0], timeout, server_name)
        out["port"] = ports[0]
        return out
    if name == "notes":
        out = await mail.probe_notes(address, real, timeout)
        out["ports"] = {str(p): out["ports"][str(r)] for p, r in zip(ports, real)}
        return out
    if name == "worldclient":
        errors = []
        for p, r in zip(ports, real):
            try:
                res = await http.probe_worldclient(address, r, timeout)
                res["port"] = p
                return res
            except ServiceError as exc:
                errors.append(str(exc))
        raise ServiceError("; ".join(errors))
    raise ValueError(f"unknown service {name!r}")


async def probe_services(address: str, ports: set[int], timeout: float, *, realm: str | None = None,
                         port_map: dict[int, int] | None = None, rate=None, bind_probes: bool = False,
                         server_name: str | None = None, skip: frozenset[str] = frozenset()) -> dict:
    """{"rdp": {...} | None, "http": ..., ...}: None when none of the service's ports was asked.

    A failed probe is {"error": "<reason>"}.  `realm` is the Kerberos realm to ask
    for (the SMB identity's DNS domain when known); `port_map` maps a well-known port
    to the port actually used (tests); `rate` is an async callable awaited before
    each new connection (the scan's --rate limiter); `bind_probes` allows the
    opt-in failed LDAP binds on a domain controller; `server_name` is the host's
    DNS name, sent as SNI by the QUIC probe; `skip` names services not to probe
    although their port is asked (443 is HTTPS and QUIC).  Never raises ServiceError.
    """
    names, tasks = [], []
    token = RATE.set(rate)  # the tasks below copy this context
    try:
        for name, sp in _service_ports():
            asked = [p for p in sp if p in ports]
            if not asked or name in skip:
                continue
            names.append(name)
            tasks.append(asyncio.create_task(probe_one(name, address, asked, timeout, realm, port_map, bind_probes,
                                                        server_name)))
    finally:
        RATE.reset(token)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    out: dict = {name: None for name, _ in _service_ports()}
    for name, res in zip(names, results):
        if isinstance(res, BaseException):
            if isinstance(res, asyncio.CancelledError):
                raise res
            reason = str(res) if isinstance(res, ServiceError) else f"{type(res).__name__}: {res}"
            out[name] = {"error": reason[:300]}
        else:
            if isinstance(res, dict):
                res.pop("body", None)
            out[name] = res
    return out
