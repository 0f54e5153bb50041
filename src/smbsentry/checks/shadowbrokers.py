"""The Shadow Brokers modules (knowledge.md table): one inferred exposure check each.

Nothing here sends exploit traffic.  Each verdict is inferred from version
facts: the Windows version/build the SMB fingerprint learned
(host.result.identity, or an NTLM CHALLENGE another service gave), and the
service facts of smbsentry.services.probe_services, which the engine attaches
as `host.services` (read defensively: it may be missing or empty).

Verdicts: `likely` when the product and version match (the patch level, where
one exists, is never visible); `not_vulnerable` when the service answered and
is not an affected version, or refused the connection ("service not
reachable"); `unknown` with the reason when the service was not probed, did
not answer usably, or the version could not be learned; no finding when the
OS learned over SMB makes the module not applicable.  All default = False:
they run with --checks all or by id.
"""

from __future__ import annotations

from ..kb.builds import nt_version_ended, nt_version_name
from ..kb.findings import affected_versions, fixed_by, meta, windows_targets
from ..model import Finding
from ..protocol.transport import SMB_PORT_NAMES
from .base import Check, HostAccess, Need
from .modules import MODULES  # noqa: F401 - the table's ids, read as shadowbrokers.MODULES


# -- facts -------------------------------------------------------------------


def windows_of(host: HostAccess) -> tuple[str, int | None, str, str] | None:
    """(NT version "5.1", build, display name, where it was learned), or None.

    The SMB identity first; else an NTLM CHALLENGE from SMTP or RDP."""
    ident = host.result.identity
    if ident.implementation == "windows" and ident.os_version:
        ver = ".".join(ident.os_version.split(".")[:2])
        name = ident.os_name or nt_version_name(ver)
        source = ident.source or ""
        where = f"NTLM over {source.split('-')[0].upper()}" if source.endswith("-ntlm") and not source.startswith("smb") else "SMB"
        return ver, ident.os_build, name, where
    for key in ("smtp", "rdp"):
        n = (host.services.get(key) or {}).get("ntlm")
        if isinstance(n, dict) and n.get("os_version"):
            ver = n["os_version"]
            return ver, n.get("os_build"), nt_version_name(ver), f"NTLM over {key.upper()}"
    return None


def not_windows(host: HostAccess) -> bool:
    return host.result.identity.implementation not in (None, "windows")


def smb_ports(host: HostAccess) -> dict[str, str]:
    return dict(host.result.ports or {})


def service(host: HostAccess, key: str) -> tuple[str, dict | None]:
    """("absent" | "refused" | "failed" | "ok", data)."""
    data = host.services.get(key)
    if data is None:
        return "absent", None
    if not isinstance(data, dict):
        return "failed", {"error": "malformed service facts"}
    err = data.get("error")
    if err:
        refused = all("refused" in part.lower() for part in str(err).split(";"))
        return ("refused" if refused else "failed"), data
    return "ok", data


def version_matches(version: str, affected: list[str]) -> str | None:
    """'8.5.3' matches '8.5' (a release line); '6.5.4' must match all three parts."""
    got = [p for p in version.replace("FP", ".").split(".") if p]
    for want in affected:
        parts = want.split(".")
        if got[:len(parts)] == parts:
            return want
    return None


class ShadowBrokersCheck(Check):
    default = False
    needs = frozenset({Need.SERVICES})  # every service port is probed; SMB need not be open
    ports: tuple[int, ...] = ()

    def _kb(self) -> dict:
        m = meta(self.id)
        mod = m.get("module") or {}
        actions = []
        try:
            from ..kb.query import actions_for

            actions = [{"id": a.id, "en": a.text_en, "zh": a.text_zh} for a in actions_for(self.id)]
        except Exception:  # noqa: BLE001 - metadata only
            pass
        return {"module": mod.get("name", self.id.title()), "name_zh": mod.get("name_zh"), "fix": m.get("fix_text"),
                "affected": m.get("affected_text"), "ports": list(m.get("ports", [])), "actions": actions}

    def make(self, status: str, *, evidence=None, reason=None, port=None, **facts) -> Finding:
        details = self._kb()
        details.update({k: v for k, v in facts.items() if v is not None})
        return self.finding(status, evidence=evidence, reason=reason, inferred=True, port=port, details=details)

    def unreachable(self, what: str, data: dict | None, port: int | None) -> Finding:
        return self.make("not_vulnerable", evidence=f"service not reachable: {what}: {(data or {}).get('error', 'closed')}", port=port)

    def service_gate(self, host, key: str, port: int) -> tuple[Finding | None, dict | None]:
        state, data = service(host, key)
        if state == "absent":
            return self.make("unknown", reason=f"service not probed: port {port} was not part of the scan", port=port), None
        if state == "refused":
            return self.unreachable(f"port {port}", data, port), None
        if state == "failed":
            return self.make("unknown", reason=f"port {port}: {data.get('error')}", port=port), None
        return None, data

    async def run(self, host: HostAccess) -> list[Finding]:
        return self.verdict(host)

    def verdict(self, host) -> list[Finding]:
        raise NotImplementedError


class _WindowsSmb(ShadowBrokersCheck):
    """A Windows-version exposure through SMB (139/445).

    Which Windows versions (and builds) it applies to is the KB's `affected`
    list (kb.findings.windows_targets); `exact_builds` names the NT versions
    whose affected builds are the only ones (a later build of that version
    shipped with the fix); for the others any build of the version counts,
    the patch level being invisible."""

    exact_builds: tuple[str, ...] = ()
    smb: tuple[str, ...] = SMB_PORT_NAMES
    note: str | None = None

    def applies(self, win) -> bool:
        targets = windows_targets(self.id)
        return win[0] in targets and (win[0] not in self.exact_builds or win[1] in targets[win[0]])

    def verdict(self, host) -> list[Finding]:
        if not_windows(host):
            return []
        ports = smb_ports(host)
        open_ports = [p for p in self.smb if ports.get(p) == "open"]
        win = windows_of(host)
        if win is not None and not self.applies(win):
            return []
        if not open_ports:
            return [self.make("not_vulnerable", evidence=f"service not reachable: SMB port {'/'.join(self.smb)} not open",
                              port=int(self.smb[0]))]
        if win is None:
            return [self.make("unknown", reason="the Windows version was not learned", port=int(open_ports[0]))]
        ver, build, name, source = win
        return [self.make("likely", evidence=f"{name} (NT {ver}, build {build}, from {source}) with SMB on {'/'.join(open_ports)}",
                          reason=self.note or "inferred from the OS version: the patch level is not visible remotely",
                          port=int(open_ports[0]))]


class Eclipsedwing(_WindowsSmb):
    id = "eclipsedwing"
    description = "Eclipsedwing (MS08-067) exposure: Windows 2000 / XP / 2003 with SMB"


class Educatedscholar(_WindowsSmb):
    id = "educatedscholar"
    description = "Educatedscholar (MS09-050) exposure: Windows Vista / 2008 with SMB2 on 445"
    exact_builds = ("6.0",)
    smb = ("445",)


class Emeraldthread(_WindowsSmb):
    id = "emeraldthread"
    description = "Emeraldthread (MS10-061) exposure: XP, 2003, Vista, 2008, 7 / 2008 R2 RTM"
    exact_builds = ("6.1",)  # 7 / 2008 R2 SP1 (7601) shipped with the fix


class Erraticgopher(_WindowsSmb):
    id = "erraticgopher"
    description = "Erraticgopher exposure: XP SP3 / 2003 with SMB on 445 (no patch)"
    smb = ("445",)
    note = "inferred from the OS version; no patch exists for XP / 2003 (the service pack level is not visible remotely)"


class Zippybeer(ShadowBrokersCheck):
    id = "zippybeer"
    description = "Zippybeer exposure: Windows domain member with SMB on 445 (affected versions never published)"

    def verdict(self, host) -> list[Finding]:
        if not_windows(host):
            return []
        if smb_ports(host).get("445") != "open":
            return [self.make("not_vulnerable", evidence="service not reachable: SMB port 445 not open", port=445)]
        ident = host.result.identity
        kstate, kdata = service(host, "kerberos")
        nstate, ndata = service(host, "nbns")
        dc = (kstate == "ok" and (kdata or {}).get("kdc")) or (nstate == "ok" and (ndata or {}).get("domain_controller"))
        # a workgroup host puts its own name in the NTLM domain fields (NetBIOS and DNS alike): not a domain
        workgroup = bool(ident.netbios_domain and ident.netbios_name and ident.netbios_domain.upper() == ident.netbios_name.upper())
        domain = None if workgroup else (ident.dns_domain or ident.netbios_domain)
        if not dc and not domain:
            return []  # a workgroup host: Zippybeer needs a domain
        win = windows_of(host)
        if dc and win is not None and nt_version_ended(win[0]):
            return [self.make("likely", evidence=f"domain controller ({'KDC on 88' if kstate == 'ok' else 'NetBIOS <1C> name'}) on {win[2]} (end of life) with SMB on 445",
                              reason="inferred: the affected versions were never published; an end-of-life domain controller gets no fix",
                              port=445, domain=domain)]
        return [self.make("unknown", reason="the affected Windows versions were never published: a domain host with SMB on 445 may be exposed",
                          evidence=f"domain {domain or '(domain controller)'} member with SMB on 445", port=445, domain=domain)]


class Esteemaudit(ShadowBrokersCheck):
    id = "esteemaudit"
    description = "Esteemaudit exposure: XP / 2003 with Remote Desktop on 3389 (no patch)"

    def verdict(self, host) -> list[Finding]:
        if not_windows(host):
            return []
        win = windows_of(host)
        if win is not None and win[0] not in windows_targets(self.id):
            return []
        gate, rdp = self.service_gate(host, "rdp", 3389)
        if gate:
            return [gate]
        if win is not None:
            return [self.make("likely", evidence=f"{win[2]} (NT {win[0]}, from {win[3]}) with RDP on 3389 (selected protocol {rdp.get('selected_protocol')})",
                              reason="inferred from the OS version; no patch exists for XP / 2003", port=3389)]
        if rdp.get("negotiation") == "none":
            return [self.make("likely", evidence="RDP on 3389 ignored the RDP_NEG_REQ (RDP 5.x, as Windows XP / 2003 answer)",
                              reason="inferred from RDP behaviour; the OS version was not learned", port=3389)]
        return [self.make("not_vulnerable", evidence=f"RDP on 3389 negotiated ({rdp.get('selected_protocol') or rdp.get('failure')}): Vista or later", port=3389)]


class Explodingcan(ShadowBrokersCheck):
    id = "explodingcan"
    description = "Explodingcan exposure: IIS 6.0 with WebDAV on 80 (Server 2003, no patch)"

    def verdict(self, host) -> list[Finding]:
        if not_windows(host):
            return []
        win = windows_of(host)
        if win is not None and win[0] not in windows_targets(self.id):
            return []
        gate, http = self.service_gate(host, "http", 80)
        if gate:
            return [gate]
        server = http.get("server")
        if http.get("product") != "iis" or http.get("version") != "6.0":
            return [self.make("not_vulnerable", evidence=f"port 80 Server: {server or '(none)'}: not IIS 6.0", port=80)]
        if http.get("webdav"):
            return [self.make("likely", evidence=f"Server: {server}; {http.get('webdav_evidence') or 'WebDAV enabled'}; DAV: {http.get('dav')}",
                              reason="inferred from the server version and WebDAV; no patch exists for IIS 6.0", port=80)]
        if http.get("propfind_status") is None and http.get("options_status") is None:
            return [self.make("unknown", reason="IIS 6.0, but OPTIONS and PROPFIND got no answer: WebDAV state not learned", port=80)]
        return [self.make("not_vulnerable", evidence=f"Server: {server}; WebDAV off (PROPFIND answered {http.get('propfind_status')})", port=80)]


class Eskimoroll(ShadowBrokersCheck):
    id = "eskimoroll"
    description = "Eskimoroll (MS14-068) exposure: 2000-2008 R2 domain controllers (Kerberos on 88)"

    def verdict(self, host) -> list[Finding]:
        if not_windows(host):
            return []
        win = windows_of(host)
        if win is not None and win[0] not in windows_targets(self.id):
            return []
        gate, krb = self.service_gate(host, "kerberos", 88)
        if gate:
            if gate.status == "not_vulnerable":
                gate.evidence = (gate.evidence or "") + " (no KDC: not a domain controller)"
            return [gate]
        realm = krb.get("realm")
        ev = f"KDC on 88 answered {krb.get('krb_error') or krb.get('message')} for realm {realm}"
        if win is None:
            return [self.make("unknown", reason="a KDC answers, but the Windows version was not learned", evidence=ev, port=88, realm=realm)]
        return [self.make("likely", evidence=f"{ev}; {win[2]} (NT {win[0]}, from {win[3]}) domain controller",
                          reason=f"inferred: the {meta(self.id)['bulletin']} patch level ({', '.join(fixed_by(self.id))}) is not visible remotely",
                          port=88, realm=realm)]


class Englishmansdentist(ShadowBrokersCheck):
    id = "englishmansdentist"
    description = "Englishmansdentist exposure: Exchange older than 2010 on SMTP 25"

    def verdict(self, host) -> list[Finding]:
        gate, smtp = self.service_gate(host, "smtp", 25)
        if gate:
            return [gate]
        ex, banner = smtp.get("exchange"), smtp.get("banner")
        if smtp.get("product") not in ("exchange", "iis-smtp"):
            return [self.make("not_vulnerable", evidence=f"SMTP banner is not Microsoft's: {banner!r}", port=25)]
        if ex in ("2000", "2003", "2007"):
            return [self.make("likely", evidence=f"banner {banner!r}: {smtp.get('basis')}", reason="inferred from the banner", port=25, exchange=ex)]
        if ex == "2007+":
            n = smtp.get("ntlm") or {}
            win = windows_of(host)
            ver = n.get("os_version") or (win[0] if win else None)
            if ver == "5.2":
                return [self.make("likely", evidence=f"banner {banner!r} (Exchange 2007 or later) on Windows Server 2003 (NT 5.2, build {n.get('os_build') or (win[1] if win else None)}): only Exchange 2007 runs there",
                                  reason="inferred from the banner and the OS version", port=25, exchange="2007")]
            return [self.make("unknown", reason="Exchange 2007 or later: the banner does not show which release", evidence=f"banner {banner!r}", port=25)]
        if ex and ex.isdigit() and int(ex) >= 2010:
            return [self.make("not_vulnerable", evidence=f"banner names Exchange {ex}", port=25)]
        return [self.make("not_vulnerable", evidence=f"Microsoft SMTP without Exchange markers: {banner!r}", port=25)]


class _Domino(ShadowBrokersCheck):
    """The affected Domino releases are the KB's (`affected[].versions`)."""

    def verdict(self, host) -> list[Finding]:
        gate, imap = self.service_gate(host, "imap", 143)
        if gate:
            return [gate]
        if imap.get("product") != "domino":
            return [self.make("not_vulnerable", evidence=f"IMAP banner is not Lotus Domino: {imap.get('banner')!r}", port=143)]
        v = imap.get("version")
        if not v:
            return [self.make("unknown", reason="Lotus Domino IMAP, but the banner shows no release",
                              evidence=f"IMAP banner {imap.get('banner')!r}", port=143)]
        affected = affected_versions(self.id)
        hit = version_matches(v, list(affected))
        if hit:
            return [self.make("likely", evidence=f"IMAP banner: Domino IMAP4 Server Release {v} (affected: {hit})", reason="inferred from the banner version", port=143, version=v)]
        return [self.make("not_vulnerable", evidence=f"Domino release {v} is not an affected release ({', '.join(affected)})", port=143, version=v)]


class Emphasismine(_Domino):
    id = "emphasismine"
    description = "Emphasismine exposure: Lotus Domino 6.5.4, 6.5.5, 7.0, 8.0, 8.5 IMAP"


class Ewokfrenzy(_Domino):
    id = "ewokfrenzy"
    description = "Ewokfrenzy exposure: Lotus Domino 6.5.4 / 7.0.2 IMAP"


class Easypi(ShadowBrokersCheck):
    id = "easypi"
    description = "Easypi exposure: Lotus Notes on 3264 on Windows NT / 2000 / XP / 2003"

    def verdict(self, host) -> list[Finding]:
        if not_windows(host):
            return []
        win = windows_of(host)
        if win is not None and win[0] not in ("4.0", "5.0", "5.1", "5.2"):
            return []
        notes = host.services.get("notes")
        if not isinstance(notes, dict) or "3264" not in (notes.get("ports") or {}):
            return [self.make("unknown", reason="service not probed: port 3264 was not part of the scan", port=3264)]
        p = notes["ports"]["3264"]
        if not p.get("open"):
            err = p.get("error", "closed")
            if "refused" in err:
                return [self.make("not_vulnerable", evidence=f"service not reachable: port 3264: {err}", port=3264)]
            return [self.make("unknown", reason=f"port 3264: {err}", port=3264)]
        if win is None:
            return [self.make("unknown", reason="port 3264 is open, but the Windows version was not learned", port=3264)]
        return [self.make("likely", evidence=f"port 3264 open (Lotus Notes) on {win[2]} (NT {win[0]}, from {win[3]})",
                          reason="inferred: the Notes release is not shown on 3264", port=3264)]


class Easybee(ShadowBrokersCheck):
    id = "easybee"
    description = "Easybee exposure: MDaemon WorldClient 9.5-10.1 on 1000/3000"

    def verdict(self, host) -> list[Finding]:
        gate, wc = self.service_gate(host, "worldclient", 3000)
        if gate:
            return [gate]
        port = wc.get("port", 3000)
        if not wc.get("worldclient"):
            return [self.make("not_vulnerable", evidence=f"port {port} is not MDaemon WorldClient (Server: {wc.get('server')})", port=port)]
        v = wc.get("version")
        if not v:
            return [self.make("unknown", reason="MDaemon WorldClient, but the version is not shown", port=port)]
        hit = version_matches(v, list(affected_versions(self.id)))
        if hit:
            return [self.make("likely", evidence=f"Server: {wc.get('server')} (WorldClient {v}, affected: {hit})", reason="inferred from the server version", port=port, version=v)]
        return [self.make("not_vulnerable", evidence=f"WorldClient {v} is not an affected version", port=port, version=v)]
