"""NTLM relay paths into a host, from facts the scan already has.

NetExec's `--gen-relay-list` keeps the hosts whose SMB server does not
require signing; relay-matrix tools add HTTP endpoints that accept NTLM and
LDAP on domain controllers.  `relay_paths` reads a result record (the JSON
form every consumer shares: the check, the report's "relay paths" section and
`report --relay-list`), so the three agree:

* SMB, per dialect family: the negotiate's SecurityMode as read (SMB2/3 and,
  where SMB1 answered, SMB1); signing not required means a relayed NTLM
  session is usable.
* HTTP on 80: `WWW-Authenticate: NTLM` (or Negotiate, which falls back to
  NTLM) on the anonymous GET of the service probe.
* LDAP on a domain controller (the anonymous rootDSE read): whether LDAP
  signing or LDAPS channel binding is enforced is not in the rootDSE; only
  a bind shows it, which the scan never sends, so the path is `unknown` with
  that reason -- never "safe".

No packet is sent here: the check needs the service probes (`Need.SERVICES`,
so it is off by default; `--checks ntlm-relay` or `all` turns it on).
"""

from __future__ import annotations

from typing import Any

from ..model import Finding
from .base import Check, HostAccess, Need

SMB_PORTS = ("445", "139")


def smb_paths(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One path per SMB dialect family whose negotiate reported a signing mode."""
    # the scan's ports are its SMB ports (445 and 139 unless --ports said otherwise); 445 first
    ports = sorted((int(p) for p, s in (record.get("ports") or {}).items() if s == "open" and str(p).isdigit()),
                   key=lambda p: (str(p) not in SMB_PORTS, SMB_PORTS.index(str(p)) if str(p) in SMB_PORTS else p))
    out = []
    seen = [("SMB2", (record.get("smb2") or {}).get("signing"))]
    smb1 = record.get("smb1") or {}
    if smb1.get("enabled"):
        seen.append(("SMB1", smb1.get("signing")))
    for proto, signing in seen:
        if signing and ports:
            out.append({"protocol": proto, "port": ports[0], "relay": signing != "required", "signing": signing,
                        "text": f"{proto} negotiate: signing {signing}"})
    return out


def service_paths(record: dict[str, Any]) -> list[dict[str, Any]]:
    """HTTP endpoints that offer NTLM, and LDAP on a domain controller, from the service probes."""
    services = record.get("services") or {}
    out = []
    http = services.get("http") or {}
    schemes = [s for s in http.get("auth") or () if s in ("NTLM", "Negotiate")]
    if schemes:
        out.append({"protocol": "HTTP", "port": http.get("port", 80), "relay": True, "auth": schemes,
                    "text": f"HTTP {http.get('port', 80)}: WWW-Authenticate offers {', '.join(schemes)}"})
    ldap = services.get("ldap") or {}
    if ldap.get("domain_controller"):
        out.append({"protocol": "LDAP", "port": ldap.get("port", 389), "relay": None,
                    "text": f"LDAP {ldap.get('port', 389)}: a domain controller; LDAP signing and LDAPS channel binding "
                            f"are not visible without a bind"})
    return out


def relay_paths(record: dict[str, Any]) -> list[dict[str, Any]]:
    return smb_paths(record) + service_paths(record)


def smb_relay_target(record: dict[str, Any]) -> bool:
    """Whether NTLM relayed to this host's SMB server works (the relay list's test)."""
    return any(p["relay"] for p in smb_paths(record))


class NtlmRelay(Check):
    id = "ntlm-relay"
    needs = frozenset({Need.SERVICES})
    default = False

    async def run(self, host: HostAccess) -> list[Finding]:
        r = host.result
        record = {"ports": r.ports, "smb2": {"signing": r.smb2.signing} if r.smb2 else None,
                  "smb1": {"enabled": r.smb1.enabled, "signing": r.smb1.signing} if r.smb1 else None,
                  "services": host.services or r.services}
        paths = relay_paths(record)
        if not paths:
            return []
        evidence = "; ".join(p["text"] for p in paths)
        open_ = [p for p in paths if p["relay"]]
        details = {"paths": [{k: v for k, v in p.items() if k != "text"} for p in paths]}
        port = next((p["port"] for p in open_), None)
        if open_:
            return [self.finding("vulnerable", evidence=evidence, details=details, port=port)]
        if any(p["relay"] is None for p in paths):
            return [self.finding("unknown", evidence=evidence, details=details,
                                 reason="the LDAP signing requirement is learned only from a bind, which the scan does not send")]
        return [self.finding("not_vulnerable", evidence=evidence, details=details)]
