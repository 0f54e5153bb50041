"""NTLM relay paths into a host, from facts the scan already has.

NetExec's `--gen-relay-list` keeps the hosts whose SMB server does not
require signing; relay-matrix tools add HTTP endpoints that accept NTLM and
LDAP on domain controllers.  `relay_paths` reads a result record (the JSON
form every consumer shares: the check, the report's "relay paths" section and
`report --relay-list`), so the three agree:

* SMB, per dialect family: the negotiate's SecurityMode as read (SMB2/3 and,
  where SMB1 answered, SMB1); signing not required means a relayed NTLM
  session is usable.
* HTTP on 80 and HTTPS on 443: `WWW-Authenticate: NTLM` (or Negotiate,
  which falls back to NTLM) on the anonymous GET of / and of /certsrv/ (AD CS
  web enrollment, the ESC8 target); over TLS the path is `likely`, since
  Extended Protection is not visible without a logon.
* LDAP on a domain controller (the anonymous rootDSE read): whether LDAP
  signing or LDAPS channel binding is enforced is not in the rootDSE; only
  a bind shows it, so without `--allow-failed-logon` the path is `unknown`
  with that reason -- never "safe"; with it, the refusals of
  services.ldap_bind's binds decide each of LDAP and LDAPS.

HTTP, HTTPS and LDAP are probed only where a relayed logon can land: on a
domain member, or a host whose NTLM facts were not seen and whose SMB1
negotiate does not name a default workgroup (`not_probed_reason`).
On a workgroup host those paths are "not probed", with the reason -- never
"no path": the SMB path, read from the negotiate the scan makes anyway, stays.

No packet is sent here: the check needs the service probes (`Need.SERVICES`,
so it is off by default; `--checks ntlm-relay` or `all` turns it on).
"""

from __future__ import annotations

from typing import Any

from ..model import Finding
from ..protocol.transport import SMB_PORT_NAMES
from .base import Check, HostAccess, Need

SMB_PORTS = SMB_PORT_NAMES  # as the result's "ports" keys, 445 first


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


NTLM_SCHEMES = ("NTLM", "Negotiate")
EPA = "Extended Protection (channel binding) is not visible without a logon"


def _ntlm(schemes) -> list[str]:
    return [s for s in schemes or () if s in NTLM_SCHEMES]


def http_paths(services: dict[str, Any]) -> list[dict[str, Any]]:
    """HTTP (80) and HTTPS (443) endpoints whose anonymous GET offers NTLM: / and AD CS's /certsrv/.

    Over plain HTTP nothing can bind NTLM to the channel: the path is open.
    Over TLS, Extended Protection can (IIS's EPA, which Microsoft's ESC8
    guidance turns on); only a logon shows it, so the path is `likely`."""
    out = []
    for key, proto, default in (("http", "HTTP", 80), ("https", "HTTPS", 443)):
        facts = services.get(key) or {}
        port = facts.get("port", default)
        relay: bool | str = True if key == "http" else "likely"
        tail = "" if key == "http" else f"; {EPA}"
        schemes = _ntlm(facts.get("auth"))
        if schemes:
            out.append({"protocol": proto, "port": port, "relay": relay, "auth": schemes, "path": "/",
                        "text": f"{proto} {port}: WWW-Authenticate offers {', '.join(schemes)}{tail}"})
        enroll = facts.get("certsrv") or {}
        schemes = _ntlm(enroll.get("auth"))
        if schemes:
            out.append({"protocol": proto, "port": port, "relay": relay, "auth": schemes, "path": "/certsrv/",
                        "adcs": True,
                        "text": f"{proto} {port} /certsrv/: AD CS web enrollment offers {', '.join(schemes)} "
                                f"(ESC8: a relayed logon can enroll a certificate){tail}"})
    return out


def _bind_path(proto: str, fact: dict[str, Any], key: str) -> dict[str, Any]:
    """One LDAP path from an opt-in bind (services.ldap_bind): its reading, or why there is none."""
    port = fact.get("port")
    if "error" in fact:
        return {"protocol": proto, "port": port, "relay": None, "opt_in": True,
                "text": f"{proto} {port}: the opt-in bind got no answer: {fact['error']}"}
    seen, code, result = fact.get(key), fact.get("result_code"), fact.get("result")
    path = {"protocol": proto, "port": port, "relay": None if seen is None else not seen, "opt_in": True,
            "result_code": code}
    if proto == "LDAP":
        path["text"] = {
            True: f"LDAP {port}: a simple bind with bogus credentials was refused with {result} ({code}): "
                  f"signing required (opt-in probe)",
            False: f"LDAP {port}: a simple bind with bogus credentials was judged on a cleartext connection "
                   f"({result}, {code}): signing not required (opt-in probe)",
            None: f"LDAP {port}: a simple bind with bogus credentials answered {result} ({code}): "
                  f"the signing requirement is not read from it (opt-in probe)"}[seen]
    else:
        path["text"] = {
            True: f"LDAPS {port}: an NTLM bind without a channel binding token was refused with 80090346 "
                  f"(SEC_E_BAD_BINDINGS): channel binding enforced (opt-in probe)",
            False: f"LDAPS {port}: an NTLM bind without a channel binding token was refused for its credentials "
                   f"({result}, {code}), not for the token: channel binding not enforced (opt-in probe)",
            None: f"LDAPS {port}: a bind with bogus credentials answered {result} ({code}): "
                  f"channel binding is not read from it (opt-in probe)"}[seen]
    return path


def ldap_paths(services: dict[str, Any]) -> list[dict[str, Any]]:
    """A domain controller's LDAP: `unknown` from the rootDSE alone, read from the opt-in binds when they ran."""
    ldap = services.get("ldap") or {}
    if not ldap.get("domain_controller"):
        return []
    binds = ldap.get("binds")
    if not binds:
        return [{"protocol": "LDAP", "port": ldap.get("port", 389), "relay": None,
                 "text": f"LDAP {ldap.get('port', 389)}: a domain controller; LDAP signing and LDAPS channel binding "
                         f"are not visible without a bind"}]
    return [_bind_path(proto, binds[key], field) for proto, key, field in
            (("LDAP", "signing", "required"), ("LDAPS", "channel_binding", "enforced")) if binds.get(key)]


WORKGROUP = ("workgroup host: a relayed domain logon has no account to land on here, and reuse of a local "
             "account's password is not visible from the network")
# The NTLM challenge's NetBIOS domain is the machine's own name on a workgroup host and its domain on a member:
# Windows (MS-NLMP TargetInfo), and Samba, whose MsvAvNbDomainName is the target name (ntlmssp_target_name:
# the NetBIOS name when standalone, the workgroup otherwise).
MEMBER_RULE_IMPLEMENTATIONS = ("windows", "samba")
NOT_PROBED = (("HTTP", "http", 80), ("HTTPS", "https", 443), ("LDAP", "ldap", 389))


def not_probed_reason(identity: dict[str, Any] | None) -> str | None:
    """Why the relay check's HTTP, HTTPS and LDAP probes are not made on this host; None: they are.

    A relayed NTLM logon is only worth something to a service that knows the
    relayed account, and the logons an attacker coerces or captures are
    domain accounts': on a workgroup host they land nowhere. So those three
    probes (three of the scan's connections per host) go only to domain
    members and DCs, and to hosts whose NTLM facts the scan did not see
    ("could not see" is not "is a workgroup host"). The test is the NTLM
    challenge's NetBIOS domain against the computer name, read by the SMB
    negotiate the scan made anyway: equal on a Windows or Samba workgroup
    host, the domain's name on a member. Without NTLM facts (an SMB1 server
    without extended security), the domain the negotiate names decides only
    when it is a default workgroup name (kb services.json
    `default_workgroups`: WORKGROUP, MSHOME): Samba and Windows name their
    workgroup there even when standalone, but a member names its domain, so
    a host still in the default workgroup joined none. Any other name, or
    another implementation, decides nothing."""
    ident = identity or {}
    name, domain = ident.get("netbios_name"), ident.get("netbios_domain")
    if ident.get("implementation") not in MEMBER_RULE_IMPLEMENTATIONS or not domain:
        return None
    if str(ident.get("source") or "").endswith("-ntlm"):
        return WORKGROUP if name and str(domain).upper() == str(name).upper() else None
    return WORKGROUP if str(domain).upper() in _default_workgroups() else None


def _default_workgroups() -> frozenset[str]:
    from ..kb.store import kb

    return kb().default_workgroups


def not_probed_paths(services: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    """The relay paths the scan did not look at on this host (no probe of that service ran), with the reason."""
    return [{"protocol": proto, "port": port, "relay": "not_probed", "reason": reason,
             "text": f"{proto} {port}: not probed ({reason})"}
            for proto, key, port in NOT_PROBED if not isinstance(services.get(key), dict)]


def service_paths(record: dict[str, Any], relay_check: bool = False) -> list[dict[str, Any]]:
    """HTTP endpoints that offer NTLM, and LDAP on a domain controller, from the service probes; when the relay
    check ran on a host it did not probe (`not_probed_reason`), those services' paths as "not probed"."""
    services = record.get("services") or {}
    reason = not_probed_reason(record.get("identity")) if relay_check else None
    return http_paths(services) + ldap_paths(services) + (not_probed_paths(services, reason) if reason else [])


def relay_check_ran(record: dict[str, Any]) -> bool:
    """Whether the stored record holds the ntlm-relay check's finding (the scan had the check on)."""
    return any(isinstance(f, dict) and f.get("id") == "ntlm-relay" for f in record.get("findings") or ())


def relay_paths(record: dict[str, Any], relay_check: bool | None = None) -> list[dict[str, Any]]:
    """Every relay path of one record; `relay_check` (default: whether the record holds the check's finding)
    adds the paths the check did not probe on a workgroup host."""
    ran = relay_check_ran(record) if relay_check is None else relay_check
    return smb_paths(record) + service_paths(record, ran)


def smb_relay_target(record: dict[str, Any]) -> bool:
    """Whether NTLM relayed to this host's SMB server works (the relay list's test)."""
    return any(p["relay"] for p in smb_paths(record))


def endpoint(address: str, path: dict[str, Any]) -> str:
    """One path as the URL ntlmrelayx's target file reads: smb://a (smb://a:139 off 445), https://a:443/certsrv/,
    ldap://a:389.  SMB1 and SMB2 paths of a host share their URL: the relay client picks the dialect."""
    host = f"[{address}]" if ":" in address else address
    scheme, port = path["protocol"].lower(), path.get("port")
    if scheme.startswith("smb"):
        return f"smb://{host}" if str(port) == "445" else f"smb://{host}:{port}"
    return f"{scheme}://{host}{'' if port is None else f':{port}'}{path.get('path', '')}"


def relay_urls(record: dict[str, Any]) -> list[str]:
    """The other protocols' open or likely relay targets as ntlmrelayx target-file URLs."""
    address = record.get("address") or ""
    urls = [endpoint(address, p) for p in service_paths(record) if p["relay"] in (True, "likely")]
    return list(dict.fromkeys(urls))


class NtlmRelay(Check):
    id = "ntlm-relay"
    needs = frozenset({Need.SERVICES})
    services = frozenset({"http", "https", "ldap"})  # the NTLM endpoints it reads: not every Shadow Brokers service
    services_domain_only = True  # ... and only on hosts not_probed_reason lets through (the scan asks per host)
    default = False

    async def run(self, host: HostAccess) -> list[Finding]:
        r = host.result
        record = {"ports": r.ports, "smb2": {"signing": r.smb2.signing} if r.smb2 else None,
                  "smb1": {"enabled": r.smb1.enabled, "signing": r.smb1.signing} if r.smb1 else None,
                  "services": host.services or r.services, "identity": r.identity.to_dict()}
        paths = relay_paths(record, relay_check=True)
        if not paths:
            return []
        evidence = "; ".join(p["text"] for p in paths)
        details = {"paths": [{k: v for k, v in p.items() if k != "text"} for p in paths]}
        for state, verdict in ((True, "vulnerable"), ("likely", "likely")):
            hit = [p for p in paths if p["relay"] == state]
            if hit:
                return [self.finding(verdict, evidence=evidence, details=details, port=hit[0]["port"])]
        skipped = [p for p in paths if p["relay"] == "not_probed"]
        if skipped:  # a path not looked at is not a path refused: never "safe"
            names = ", ".join(p["protocol"] for p in skipped)
            return [self.finding("unknown", evidence=evidence, details=details,
                                 reason=f"{names}: not probed ({skipped[0]['reason']})")]
        if any(p["relay"] is None for p in paths):
            reason = ("the opt-in binds did not show the LDAP signing or channel binding requirement"
                      if any(p.get("opt_in") for p in paths) else
                      "the LDAP signing requirement is learned only from a bind, which the scan sends only with "
                      "--allow-failed-logon")
            return [self.finding("unknown", evidence=evidence, details=details, reason=reason)]
        return [self.finding("not_vulnerable", evidence=evidence, details=details)]
