"""Fingerprint one host: port states, SMB1, SMB2/3 dialects and security, identity.

Connection plan on 445 (the same on 139 when 445 is closed), chosen to need
few connections while never reporting what was not seen:
  A. SMB1: negotiate offering only NT LM 0.12 (a reset or an SMB2 answer
     means SMB1 is off), then the extended-security session setup whose
     first leg carries NativeOS/NativeLanMan and an NTLM CHALLENGE; then the
     anonymous and guest logons on the same connection.
  B. SMB2: negotiate offering every dialect with 3.1.1 contexts (highest
     dialect, signing, capabilities, compression, ciphers, GUID, times), then
     the NTLM CHALLENGE: the identity even with SMB1 disabled.
  C. The lowest dialect: a negotiate offering 2.0.2 alone (and the next ones
     up if refused).  Windows, Samba and ksmbd implement the supported set as
     a min..max range, so the dialects between the two confirmed ends are
     listed with `dialects_method: "range"`; `--dialects exact` negotiates
     each one instead (one connection per dialect, as nmap does).
On 139 with 445 open, only A's negotiate runs, to report SMBv1 per port.
"""

from __future__ import annotations

import asyncio
import functools
import struct
import time
import uuid
from dataclasses import dataclass, field

from ..checks.base import Need
from ..kb import builds
from ..model import HostResult, Identity, Smb1Info, Smb2Info, cap
from ..protocol import ntlm, smb1, smb2, spnego
from ..protocol.errors import ProtocolError
from ..protocol.filetime import to_iso
from .connection import CONNECT_TIMEOUT, HOST_TIMEOUT, LOCAL, REFUSED, RESET, UNREACHABLE, Connection, ScanError
from .host import HostContext, RateLimiter, ScanOptions, host_service_ports
from .session import Logon, Smb1Client, Smb2Client

def port_state(exc: ScanError) -> str:
    if exc.connected:
        return "open"
    if exc.kind == REFUSED:
        return "closed"
    if exc.kind == LOCAL:
        return "unknown"
    if exc.kind in (CONNECT_TIMEOUT, UNREACHABLE):
        return "filtered"
    return "open" if exc.kind == RESET else "filtered"


async def probe_port(ctx: HostContext, port: int) -> Connection | None:
    try:
        conn = await ctx.connect(port)
    except ScanError as exc:
        ctx.result.ports[str(port)] = port_state(exc)
        if exc.kind not in (REFUSED, CONNECT_TIMEOUT):
            ctx.error(port, "connect", exc)
        return None
    ctx.result.ports[str(port)] = "open"
    return conn


# -- A: SMB1 ----------------------------------------------------------------


@dataclass(slots=True)
class Smb1Outcome:
    enabled: bool | None = None
    negotiate: smb1.NegotiateResponse | None = None
    setup: smb1.SessionSetupResponse | None = None
    challenge: ntlm.Challenge | None = None
    anonymous: Logon | None = None
    guest: Logon | None = None


async def smb1_probe(ctx: HostContext, conn: Connection, port: int, full: bool) -> Smb1Outcome:
    out = Smb1Outcome()
    client = Smb1Client(conn, ctx.options.timeout)
    try:
        resp, why = await client.negotiate()
    except ScanError as exc:
        ctx.error(port, "smb1-negotiate", exc)
        conn.close()
        return out
    if resp is None:
        out.enabled = False
        conn.close()
        return out
    out.enabled, out.negotiate = True, resp
    if not full:
        conn.close()
        return out
    ctx.smb1_client, ctx.smb1_port = client, port
    step = "smb1-session-setup"
    try:
        if resp.extended_security:
            out.setup, out.challenge = await client.ntlm_challenge()
        step = "smb1-anonymous-logon"
        out.anonymous = await client.logon("anonymous")
        if out.setup is None:
            out.setup = client.first_setup
        # The guest logon is left to whoever needs it (HostContext.logon):
        # two round trips less for every host when no check asks.
    except ScanError as exc:
        ctx.error(port, step, exc)
    return out


# -- B, C: SMB2 -------------------------------------------------------------


@dataclass(slots=True)
class Smb2Outcome:
    negotiate: smb2.NegotiateResponse | None = None
    refused: str | None = None
    challenge: ntlm.Challenge | None = None
    anonymous: Logon | None = None
    confirmed: set[int] = field(default_factory=set)
    tested: set[int] = field(default_factory=set)


async def smb2_probe(ctx: HostContext, port: int) -> Smb2Outcome:
    out = Smb2Outcome()
    try:
        conn = await ctx.connect(port)
    except ScanError as exc:
        ctx.error(port, "smb2-connect", exc)
        return out
    client = Smb2Client(conn, ctx.options.timeout)
    step = "smb2-negotiate"
    try:
        resp, why = await client.negotiate()
        if resp is None:
            out.refused = why
            conn.close()
            return out
        out.negotiate = resp
        out.confirmed.add(resp.dialect)
        out.tested.update(smb2.ALL_DIALECTS)
        ctx.smb2_client, ctx.smb2_port = client, port
    except ScanError as exc:
        ctx.error(port, step, exc)
        conn.close()  # a failed negotiate leaves nothing to reuse on this connection
    return out


async def _negotiate_only(ctx: HostContext, port: int, dialects: tuple[int, ...]) -> int | None:
    """One connection, one negotiate: the dialect chosen, or None if refused."""
    try:
        conn = await ctx.connect(port)
    except ScanError as exc:
        ctx.error(port, "smb2-dialect-connect", exc)
        return None
    try:
        resp, _ = await Smb2Client(conn, ctx.options.timeout).negotiate(dialects, contexts=None)
        return resp.dialect if resp else None
    except ScanError as exc:
        ctx.error(port, "smb2-dialect-probe", exc)
        return None
    finally:
        conn.close()


async def probe_dialects(ctx: HostContext, port: int, out: Smb2Outcome) -> None:
    """Fill `out.confirmed` below the highest dialect (see the module doc)."""
    assert out.negotiate is not None
    highest = out.negotiate.dialect
    lower = [d for d in smb2.ALL_DIALECTS if d < highest]
    if ctx.options.dialect_method == "exact":
        answers = await asyncio.gather(*(_negotiate_only(ctx, port, (d,)) for d in lower))
        for d, got in zip(lower, answers):
            out.tested.add(d)
            if got == d:
                out.confirmed.add(d)
        return
    for d in lower:  # lowest first: one connection for nearly every server
        got = await _negotiate_only(ctx, port, (d,))
        out.tested.add(d)
        if got == d:
            out.confirmed.add(d)
            return


def dialect_list(out: Smb2Outcome, method: str) -> list[int]:
    if not out.confirmed:
        return []
    if method == "exact":
        return sorted(out.confirmed)
    lo, hi = min(out.confirmed), max(out.confirmed)
    return [d for d in smb2.ALL_DIALECTS if lo <= d <= hi]


# -- assembling the result ---------------------------------------------------

def signing_smb1(mode: int | None) -> str | None:
    if mode is None:
        return None
    if mode & smb1.SECMODE_SIGNING_REQUIRED:
        return "required"
    if mode & smb1.SECMODE_SIGNING_ENABLED:
        return "enabled"
    return "disabled"


def signing_smb2(mode: int) -> str:
    # For SMB2+ only "required" is meaningful to a client; signing itself is
    # always available.  Read straight from the negotiate reply (checks.md).
    return "required" if mode & smb2.SIGNING_REQUIRED else "enabled"


def identity_from(challenge: ntlm.Challenge, source: str, ident: Identity) -> None:
    ident.source = source
    ident.netbios_name = cap(challenge.av_text(ntlm.AV_NB_COMPUTER))
    ident.netbios_domain = cap(challenge.av_text(ntlm.AV_NB_DOMAIN))
    ident.dns_name = cap(challenge.av_text(ntlm.AV_DNS_COMPUTER))
    ident.dns_domain = cap(challenge.av_text(ntlm.AV_DNS_DOMAIN))
    ident.dns_forest = cap(challenge.av_text(ntlm.AV_DNS_TREE))
    ident.ntlm_time = to_iso(challenge.timestamp)
    v = challenge.version
    if v is not None:
        _os_from_version(ident, v.major, v.minor, v.build)


def _os_from_version(ident: Identity, major: int, minor: int, build: int) -> None:
    """The NTLM Version mapped to product names (builds shared by editions say so)."""
    ident.os_version = f"{major}.{minor}.{build}"
    ident.os_build = build
    guess = builds.lookup(major, minor, build)
    ident.os_name = guess.name
    ident.os_candidates = list(guess.candidates)
    ident.os_build_shared = guess.shared
    ident.implementation = guess.implementation


def identity_from_services(services: dict, ident: Identity) -> None:
    """With no SMB identity: the NTLM CHALLENGE facts RDP (CredSSP) or SMTP gave.

    The same fields and build mapping as over SMB; `source` says which
    service ("rdp-ntlm", "smtp-ntlm").  Kept only when it names a version."""
    if ident.source is not None or ident.implementation is not None or ident.samba_version is not None:
        return  # SMB said something about the OS: the SMB facts stand
    for key in ("rdp", "smtp"):
        facts = (services.get(key) or {}).get("ntlm")
        if not isinstance(facts, dict) or not facts.get("os_version") or facts.get("os_build") is None:
            continue
        try:
            major, minor = (int(x) for x in str(facts["os_version"]).split(".")[:2])
            build = int(facts["os_build"])
        except (TypeError, ValueError):
            continue
        ident.source = f"{key}-ntlm"
        for name in ("netbios_name", "netbios_domain", "dns_name", "dns_domain", "dns_forest"):
            value = facts.get(name)
            setattr(ident, name, cap(value) if isinstance(value, str) else None)
        ident.ntlm_time = facts.get("time") if isinstance(facts.get("time"), str) else None
        _os_from_version(ident, major, minor, build)
        return


def assemble(ctx: HostContext, a: Smb1Outcome | None, b: Smb2Outcome | None, smb1_ports: dict[str, bool]) -> None:
    r = ctx.result
    ident = r.identity
    if b is not None and (b.negotiate is not None or b.refused):
        info = Smb2Info(dialects_method=ctx.options.dialect_method)
        n = b.negotiate
        if n is not None:
            info.dialects = [smb2.DIALECTS[d] for d in dialect_list(b, ctx.options.dialect_method)]
            info.dialects_confirmed = [smb2.DIALECTS[d] for d in sorted(b.confirmed)]
            info.signing = signing_smb2(n.security_mode)
            info.capabilities = n.capability_names
            info.compression = [smb2.COMPRESSION.get(c, f"0x{c:04x}") for c in n.contexts.compression if c != 0]
            info.encryption = [smb2.CIPHERS.get(c, f"0x{c:04x}") for c in n.contexts.ciphers if c != 0]
            info.signing_algorithms = [smb2.SIGNING_ALGORITHMS.get(c, f"0x{c:04x}") for c in n.contexts.signing]
            info.server_guid = str(uuid.UUID(bytes_le=n.server_guid))
            info.system_time = to_iso(n.system_time)
            info.boot_time = to_iso(n.start_time)
            info.max_read, info.max_write, info.max_transact = n.max_read, n.max_write, n.max_transact
            if n.security_blob:
                try:
                    token = spnego.parse(n.security_blob)
                    info.security_mechanisms = [spnego.MECH_NAMES.get(m, m) for m in token.mechs]
                except ProtocolError:
                    pass
        r.smb2 = info
    if a is not None and a.enabled is not None:
        if a.enabled and a.negotiate is not None:
            info1 = Smb1Info(enabled=True, ports=smb1_ports)
            info1.signing = signing_smb1(a.negotiate.security_mode)
            info1.extended_security = a.negotiate.extended_security
            info1.capabilities = a.negotiate.capabilities
            info1.system_time = to_iso(a.negotiate.system_time)
            info1.primary_domain = cap(a.negotiate.domain)
            info1.server_name = cap(a.negotiate.server_name)
            setup = a.setup
            if setup is not None:
                info1.native_os = cap(setup.native_os)
                info1.native_lm = cap(setup.native_lm)
                if setup.primary_domain:
                    info1.primary_domain = cap(setup.primary_domain)
            r.smb1 = info1
        else:
            r.smb1 = Smb1Info(enabled=any(smb1_ports.values()), ports=smb1_ports)
    elif smb1_ports:
        r.smb1 = Smb1Info(enabled=any(smb1_ports.values()), ports=smb1_ports)
    # Identity: the SMB2 challenge first (works with SMB1 off), SMB1's next.
    if b is not None and b.challenge is not None:
        identity_from(b.challenge, "smb2-ntlm", ident)
    elif a is not None and a.challenge is not None:
        identity_from(a.challenge, "smb1-ntlm", ident)
    elif a is not None and a.negotiate is not None and (a.negotiate.server_name or a.negotiate.domain):
        # Servers without extended security (XP, Samba 3.x) name themselves
        # and their domain in the negotiate reply; some send only the domain.
        ident.source = "smb1-negotiate"
        ident.netbios_name = cap(a.negotiate.server_name)
        ident.netbios_domain = cap(a.negotiate.domain)
    lm = r.smb1.native_lm if r.smb1 and r.smb1.enabled else None
    if lm:
        samba_lm = builds.samba_native_lm()  # the pattern is knowledge: kb/data/builds.json
        m = samba_lm.search(lm) if samba_lm else None
        if m:
            ident.samba_version = m.group(1)[:64]
            ident.implementation = "samba"
            if ident.os_name is None or ident.os_name == "Samba":
                ident.os_name = f"Samba {ident.samba_version}"
    if a is not None and a.anonymous:
        ctx.smb1_logons["anonymous"] = a.anonymous
    if b is not None and b.anonymous:
        ctx.smb2_logons["anonymous"] = b.anonymous
    session_facts(ctx)


def session_facts(ctx: HostContext) -> None:
    """identity.null_session / guest_session from the logons tried so far
    (the guest logon only happens when a check needs it; untried stays null)."""
    ident = ctx.result.identity
    logons = list(ctx.smb1_logons.values()) + list(ctx.smb2_logons.values())
    anon = [x for x in logons if x.kind == "anonymous"]
    guest = [x for x in logons if x.kind == "guest"]
    if anon:
        ident.null_session = any(x.ok for x in anon)
    if guest:
        ident.guest_session = any(x.ok and x.guest for x in guest)


async def fingerprint(ctx: HostContext) -> None:
    """Run the connection plan against ctx.address, filling ctx.result."""
    ports = ctx.options.ports
    opened = dict(zip(ports, await asyncio.gather(*(probe_port(ctx, p) for p in ports))))
    main_port = next((p for p in ports if opened.get(p) is not None), None)
    smb1_ports: dict[str, bool] = {}
    a = b = None
    # The other ports' SMB1 negotiates run alongside the main port's probes,
    # so no connection sits idle holding a server process.
    extra_ports = [(p, c) for p, c in opened.items() if c is not None and p != main_port]
    extra = asyncio.gather(*(smb1_probe(ctx, c, p, full=False) for p, c in extra_ports))
    if main_port is not None:
        conn = opened[main_port]
        a, b = await asyncio.gather(smb1_probe(ctx, conn, main_port, full=True), smb2_probe(ctx, main_port))
        if a.enabled is not None:
            smb1_ports[str(main_port)] = a.enabled
        if b.negotiate is not None:
            await probe_dialects(ctx, main_port, b)
        if b.negotiate is not None and ctx.smb2_client is not None and (a.challenge is None or not a.enabled):
            # SMB1's first leg already carried the NTLM challenge (the same
            # identity) when SMB1 is on; otherwise ask over SMB2, and use that
            # challenge for the anonymous logon the checks reuse.
            step = "smb2-session-setup"
            try:
                _, b.challenge = await ctx.smb2_client.ntlm_challenge()
                if not a.enabled:
                    step = "smb2-anonymous-logon"
                    b.anonymous = await ctx.smb2_client.logon("anonymous")
            except ScanError as exc:
                ctx.error(main_port, step, exc)
    for (port, _), outcome in zip(extra_ports, await extra):
        if outcome.enabled is not None:
            smb1_ports[str(port)] = outcome.enabled
    assemble(ctx, a, b, smb1_ports)


async def run_checks(ctx: HostContext, checks) -> None:
    """Run each check on the shared sessions; a failing check becomes an
    `unknown` finding with the reason and never stops the others."""
    for check in checks:
        try:
            findings = await check.run(ctx)
        except ScanError as exc:
            findings = [check.unknown(f"probe failed: {exc}")]
        except ProtocolError as exc:
            findings = [check.unknown(f"malformed reply: {exc}")]
        except (ValueError, KeyError, IndexError, struct.error) as exc:
            findings = [check.unknown(f"unexpected reply: {type(exc).__name__}: {exc}")]
        except Exception as exc:  # noqa: BLE001 - a check's bug stays with that check
            findings = [check.unknown(f"internal error in the check: {type(exc).__name__}: {exc}")]
        ctx.result.findings.extend(findings)


async def scan_host(address: str, options: ScanOptions, limiter: RateLimiter, hostname: str | None = None) -> HostResult:
    """Fingerprint one address; never raises (errors land in result.errors).

    The whole host gets options.host_timeout seconds (time spent waiting for
    the --rate limiter not counted): a host that answers every step just
    inside the step timeout must not hold a scan slot for minutes.  When it runs out, what was learned is kept, the checks that
    had not decided are `unknown` with that reason, and every connection of
    the host is closed (HostContext.close), as on every other path."""
    start = time.perf_counter()
    ctx = HostContext(address, options, limiter, HostResult(address=address, hostname=hostname))
    deadline = ctx.deadline = asyncio.timeout(options.host_timeout) if options.host_timeout else None
    try:
        if deadline is None:
            await _scan_steps(ctx)
        else:
            async with deadline:
                await _scan_steps(ctx)
    except TimeoutError:
        if deadline is None or not deadline.expired():
            raise  # pragma: no cover - the steps catch their own timeouts
        ctx.error(0, "scan", ScanError(HOST_TIMEOUT, f"gave up after {options.host_timeout:g}s (--host-timeout)"))
        _undecided_checks(ctx, f"not decided: the host did not finish within --host-timeout {options.host_timeout:g}s")
    except ScanError as exc:  # pragma: no cover - steps catch their own
        ctx.error(0, "scan", exc)
    except Exception as exc:  # noqa: BLE001 - one host's bug must not end the scan
        # Whatever went wrong here stays with this host: its result is still
        # written, with the failure named, and the other hosts go on.
        ctx.error(0, "scan", exc)
    finally:
        ctx.close()
    ctx.result.duration_ms = int((time.perf_counter() - start) * 1000)
    return ctx.result


async def _scan_steps(ctx: HostContext) -> None:
    options, address = ctx.options, ctx.address
    await fingerprint(ctx)
    if options.checks and ctx.result.smb_open:
        await run_checks(ctx, [c for c in options.checks if Need.SMB in c.needs])
        session_facts(ctx)
    # The SMB sockets go before the service probes open theirs, so a host
    # never holds both (the engine's descriptor budget counts on it).
    ctx.close()
    if options.service_ports:
        from ..services import probe_services

        # Safe service fingerprints for the Shadow Brokers modules that
        # aim at other ports; each probe has its own timeout and never
        # raises.  Also on hosts whose SMB is closed: an Exchange or
        # Domino server behind a firewall that drops 445 is still exposed.
        ctx.result.services = await probe_services(
            address, host_service_ports(ctx.result, options), options.timeout, realm=ctx.result.identity.dns_domain or None,
            rate=ctx.pace if ctx.limiter.rate else None, bind_probes=options.failed_logon_probes,
            server_name=ctx.result.hostname or ctx.result.identity.dns_name or None,  # SNI of the QUIC probe
            skip=_unwanted_services(options.checks),
        )
        identity_from_services(ctx.result.services, ctx.result.identity)
    others = [c for c in options.checks if Need.SMB not in c.needs]
    if others and (ctx.result.smb_open or ctx.result.services_answered):
        await run_checks(ctx, others)
    if options.checks and (ctx.result.smb_open or ctx.result.services_answered):
        from ..services.common import RATE
        from .role import assess

        token = RATE.set(ctx.pace if ctx.limiter.rate else None)  # the directory probe obeys --rate
        try:
            ctx.result.role = await assess(ctx.result, options.timeout)
        finally:
            RATE.reset(token)


def _undecided_checks(ctx: HostContext, reason: str) -> None:
    """An `unknown` finding for every selected check that has none yet
    (only where it would have run: SMB open, or another service answered)."""
    r = ctx.result
    if not (r.smb_open or r.services_answered):
        return
    have = {f.id for f in r.findings}
    for check in ctx.options.checks:
        if check.id not in have and (r.smb_open or Need.SMB not in check.needs):
            r.findings.append(check.unknown(reason))


def _unwanted_services(checks) -> frozenset[str]:
    return _unwanted(tuple(checks))


@functools.lru_cache(maxsize=16)
def _unwanted(checks: tuple) -> frozenset[str]:
    """443 is both HTTPS (TCP: the relay and Shadow Brokers checks) and SMB over QUIC (UDP): the port set cannot
    tell which a scan asked, the checks can. Without the QUIC check no QUIC probe; with it and nothing that
    wants the TCP services, no HTTPS probe. Asked by number alone (no such check), both run. (Once per scan's
    checks, not per host.)"""
    needs = {n for c in checks for n in c.needs}
    if Need.SERVICES in needs and Need.QUIC not in needs:
        return frozenset({"quic"})
    if Need.QUIC in needs and Need.SERVICES not in needs:
        return frozenset({"https"})
    return frozenset()
