"""A host's role as far as it shows without credentials: domain controller, file server, or unknown.

The planner must know it before it advises anything that takes the Server
service down: on a domain controller that removes SYSVOL and NETLOGON, so the
domain's logons; on a file server, the business's data.  Evidence, strongest
first:
- an anonymous LDAP rootDSE read on 389 that answers as an Active Directory
  domain controller (the only probe this module sends, and only to Windows
  domain members; a TCP connect to 88 rides along);
- SYSVOL and NETLOGON among the shares a session listed;
- a Kerberos KDC answering on 88 (service probes), the domain controllers'
  NetBIOS group name <1C> (NBNS);
- data shares listed (anything but the administrative `$` shares): file server.
A workgroup host cannot be a domain controller.  When no share listing
succeeded, `shares_visible` is false: "no data shares seen" then means "could
not see", never "has none".
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..model import HostResult
from ..services import ldap
from ..services.common import ServiceError, close, connect

DC_SHARES = ("SYSVOL", "NETLOGON")
DIRECTORY_PORTS = (389, 88)  # the directory probe's connections: the rootDSE read, the connect to the KDC's port
LISTING_CHECKS = ("smb-null-session", "smb-guest-access")


def listed_shares(result: HostResult) -> list[str] | None:
    """Share names a session listed (NetShareEnum), or None when no listing succeeded."""
    names: list[str] | None = None
    for f in result.findings:
        shares = f.details.get("shares") if f.id in LISTING_CHECKS else None
        if isinstance(shares, list):
            names = (names or []) + [str(s) for s in shares if isinstance(s, str)]
    return list(dict.fromkeys(names)) if names is not None else None


def data_shares(shares: list[str]) -> list[str]:
    """Shares people keep data in: not the administrative ones, not a DC's SYSVOL/NETLOGON."""
    return [s for s in shares if not s.endswith("$") and s.upper() not in DC_SHARES]


def _domain_member(result: HostResult) -> bool:
    ident = result.identity
    return bool(ident.implementation == "windows" and ident.netbios_domain and ident.netbios_name
                and ident.netbios_domain.upper() != ident.netbios_name.upper())


def _service_evidence(services: dict[str, Any]) -> list[str]:
    out = []
    krb = services.get("kerberos")
    if isinstance(krb, dict) and krb.get("kdc"):
        out.append("a Kerberos KDC answered on 88")
    ldp = services.get("ldap")
    if isinstance(ldp, dict) and ldp.get("domain_controller"):
        level = f" ({ldp['dc_functionality']} functional level)" if ldp.get("dc_functionality") else ""
        out.append(f"the LDAP rootDSE on 389 answered as an Active Directory domain controller{level}")
    nbns = services.get("nbns")
    if isinstance(nbns, dict) and nbns.get("domain_controller"):
        out.append("registers the domain controllers' NetBIOS group name <1C> (NBNS on 137)")
    return out


async def _port_open(address: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await connect(address, port, timeout)
    except ServiceError:
        return False
    await close(writer)
    return True


async def directory_probe(address: str, timeout: float) -> dict:
    """The LDAP rootDSE read, with a connect to 88 alongside; {"ldap": ..., "kerberos_port": bool}."""
    async def read_ldap():
        try:
            return await ldap.probe(address, DIRECTORY_PORTS[0], timeout)
        except ServiceError as exc:
            return {"error": str(exc)[:300]}

    got, kdc = await asyncio.gather(read_ldap(), _port_open(address, DIRECTORY_PORTS[1], timeout))
    return {"ldap": got, "kerberos_port": kdc}


def decide(result: HostResult, directory: dict | None = None) -> dict:
    """The role record: {"value", "evidence", "shares_visible", "data_shares"}."""
    shares = listed_shares(result)
    evidence = _service_evidence(result.services or {})
    if directory:
        ldp = directory.get("ldap") or {}
        if ldp.get("domain_controller"):
            evidence += _service_evidence({"ldap": ldp})
        elif directory.get("kerberos_port") and "error" in ldp and "refused" not in ldp["error"]:
            evidence.append("88 and 389 accept connections (a domain controller's ports)")
    if shares and all(any(s.upper() == d for s in shares) for d in DC_SHARES):
        evidence.insert(0, "SYSVOL and NETLOGON are among the listed shares")
    data = data_shares(shares or [])
    if evidence:
        return {"value": "domain-controller", "evidence": evidence, "shares_visible": shares is not None, "data_shares": data}
    if data:
        shown = ", ".join(data[:8])
        return {"value": "file-server", "evidence": [f"data shares listed: {shown}"], "shares_visible": True, "data_shares": data}
    why = []
    if shares is None:
        why.append("no share listing succeeded (anonymous and guest were refused or not tried): whether it shares data is not known")
    else:
        why.append("the share listing holds no data shares")
    if result.identity.implementation == "windows" and not _domain_member(result) and result.identity.netbios_name:
        why.append("workgroup host: not a domain controller")
    return {"value": "unknown", "evidence": why, "shares_visible": shares is not None, "data_shares": data}


async def assess(result: HostResult, timeout: float) -> dict:
    """decide(), probing the directory ports first when the host is a Windows domain member and
    the service probes did not already read LDAP (`probed_ports` then names the two ports connected to)."""
    directory = None
    if result.smb_open and _domain_member(result) and not isinstance((result.services or {}).get("ldap"), dict):
        directory = await directory_probe(result.address, timeout)
    got = decide(result, directory)
    if directory is not None:  # the connections it cost, as the record's `connections` counts the SMB ones
        got["probed_ports"] = list(DIRECTORY_PORTS)
    return got
