"""The SMBv1 inventory from traffic, recorded in the store: who still speaks SMB1 to whom.

Turning SMBv1 off is the first hardening step of every advisory, and the
first question before it is "what breaks if we do" (the Alibaba Cloud
guide; seed documents' question about XP and 2003 clients). `detect`
already sees every SMB1 dialogue; `detect --store` keeps it: one finished
"scan" of kind "smb1-usage" per run, one record per server address, naming
the clients that spoke SMB1 to it (dialect, NativeOS, first and last seen)
and the captures and time span the run covered. The planner reads these
records beside scan results (a server with SMB1 clients gets "upgrade
these clients first"; one without, "no SMB1 use seen from ... to ...");
the dashboard shows them per host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KIND = "smb1-usage"
MAX_CLIENTS = 500  # per server: the first ones by last use are kept, and the count of all


def _client(ev: dict) -> dict:
    s = ev.get("smb1") or {}
    return {"client": s.get("client"), "dialect": s.get("dialect"), "spoken": bool(s.get("spoken")),
            "client_native_os": s.get("client_native_os"), "client_native_lm": s.get("client_native_lm"),
            "client_offers_smb2": s.get("client_offers_smb2"), "flows": s.get("flows"),
            "first_seen": s.get("first_seen"), "last_seen": s.get("last_seen")}


def host_records(events: list[dict], captures: list[str], span: tuple[str | None, str | None]) -> list[dict]:
    """One host-like record per server that someone spoke (or offered) SMB1 to."""
    servers: dict[str, dict] = {}
    for ev in events:
        s = ev.get("smb1") or {}
        server = s.get("server")
        if not server:
            continue
        rec = servers.get(server)
        if rec is None:
            rec = servers[server] = {
                "address": server, "hostname": None, "ports": {}, "smb1": None, "smb2": None,
                "identity": {"netbios_name": None, "os_name": s.get("server_native_os")},
                "findings": [], "errors": [], "duration_ms": 0, "connections": 0, "kind": KIND,
                "smb1_usage": {"clients": [], "client_count": 0, "captures": captures, "span": list(span),
                               "server_native_os": s.get("server_native_os"), "server_native_lm": s.get("server_native_lm")},
            }
        usage = rec["smb1_usage"]
        usage["client_count"] += 1
        usage["clients"].append(_client(ev))
    for rec in servers.values():
        clients = sorted(rec["smb1_usage"]["clients"], key=lambda c: c.get("last_seen") or "", reverse=True)
        rec["smb1_usage"]["clients"] = clients[:MAX_CLIENTS]
    return list(servers.values())


def record(db: str | None, inputs: list[str], events: list[dict], span: tuple[Any, Any]) -> int:
    """Write one finished run of kind smb1-usage; returns its id. StoreError when the store fails."""
    from ..store import Store
    from ..store.finished import record_finished

    captures = [Path(p).name for p in inputs] or ["live capture"]
    store = Store.open(db)
    try:
        return record_finished(store, captures, {"kind": KIND, "captures": captures, "span": list(span)},
                               host_records(events, captures, span))
    finally:
        store.close()
