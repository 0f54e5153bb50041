"""Which scanned host an inventory describes: the one rule for `audit --merge`, the planner and the dashboard.

In order, the first that decides:
1. the address (an inventory that names its address);
2. the DNS name (FQDN, case-insensitive): the inventory's host name or its
   name + DNS domain, against the scan's dns_name or hostname;
3. the NetBIOS name together with its domain (the inventory's domain against
   the scan's NetBIOS or DNS domain);
4. the bare NetBIOS name, only when exactly one scanned host carries it and
   exactly one inventory does.
A name that several hosts share is never joined on alone: two WS01 in two
domains are two machines, and joining the wrong one would put one host's
patch state on another.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def _low(text: Any) -> str | None:
    s = str(text).strip().lower() if text else ""
    return s or None


def scan_keys(host: dict) -> dict[str, Any]:
    ident = host.get("identity") or {}
    nb = _low(ident.get("netbios_name"))
    domains = {d for d in (_low(ident.get("netbios_domain")), _low(ident.get("dns_domain"))) if d}
    dns = {d for d in (_low(ident.get("dns_name")), _low(host.get("hostname"))) if d and "." in d}
    return {"address": host.get("address"), "dns": dns, "netbios": nb, "domains": domains}


def audit_keys(audit: dict) -> dict[str, Any]:
    facts = audit.get("facts") or {}
    name = _low(audit.get("host"))
    domain = _low(facts.get("domain") or facts.get("dns_domain"))
    dns, nb = set(), name
    if name and "." in name:
        dns.add(name)
        nb = name.split(".", 1)[0]
    elif name and domain and "." in domain:
        dns.add(f"{name}.{domain}")
    domains = {domain, domain.split(".", 1)[0]} if domain else set()
    return {"address": audit.get("address"), "dns": dns, "netbios": nb, "domains": domains}


def match(scans: list[dict], audits: list[dict]) -> dict[int, int]:
    """{audit index: scan index} for the audits that name a scanned host by the rules above."""
    sk = [scan_keys(h) for h in scans]
    by_addr = {k["address"]: i for i, k in enumerate(sk) if k["address"]}
    by_dns: dict[str, list[int]] = defaultdict(list)
    by_nb: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(sk):
        for d in k["dns"]:
            by_dns[d].append(i)
        if k["netbios"]:
            by_nb[k["netbios"]].append(i)
    ak = [audit_keys(a) for a in audits]
    audit_nb: dict[str, int] = defaultdict(int)
    for k in ak:
        if k["netbios"]:
            audit_nb[k["netbios"]] += 1
    out: dict[int, int] = {}
    for j, k in enumerate(ak):
        hit = by_addr.get(k["address"]) if k["address"] else None
        if hit is None:
            found = {i for d in k["dns"] for i in by_dns.get(d, ())}
            hit = found.pop() if len(found) == 1 else None
        if hit is None and k["netbios"] and k["domains"]:
            found = {i for i in by_nb.get(k["netbios"], ()) if sk[i]["domains"] & k["domains"]}
            hit = found.pop() if len(found) == 1 else None
        if hit is None and k["netbios"] and len(by_nb.get(k["netbios"], ())) == 1 and audit_nb[k["netbios"]] == 1:
            hit = by_nb[k["netbios"]][0]
        if hit is not None:
            out[j] = hit
    return out
