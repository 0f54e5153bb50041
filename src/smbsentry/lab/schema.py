"""The profile file schema: strict parsing of lab/profiles/*.json.

Every key is known, every number may be written in hex ("0x8001e3fc", as
the captures show them), every finding id and status is checked, and the
DoublePulsar key is recomputed from the signature bytes: a typo in a profile
raises ProfileError instead of silently changing what the lab answers.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from ..protocol import ntlm, smb2, status
from .profile_model import (
    BEHAVIOURS,
    CIPHER_CODES,
    COMPRESSION_CODES,
    FINDING_IDS,
    KINDS,
    MECH_OIDS,
    MS17_010_STATUS,
    ROLES,
    SIGNING_CODES,
    STATUSES,
    Access,
    Candidate,
    NtlmConfig,
    Profile,
    ProfileError,
    QuicConfig,
    Share,
    Smb1Config,
    Smb2Config,
    doublepulsar_key,
)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ProfileError(f"{what}: expected a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise ProfileError(f"{what}: {value!r} is not a number")


def _keys(d: dict, allowed: set[str], what: str) -> dict:
    if not isinstance(d, dict):
        raise ProfileError(f"{what}: expected an object")
    unknown = set(d) - allowed
    if unknown:
        raise ProfileError(f"{what}: unknown keys {sorted(unknown)}")
    return d


def _guid(text: str, what: str) -> bytes:
    try:
        return uuid.UUID(text).bytes_le
    except (ValueError, AttributeError, TypeError):
        raise ProfileError(f"{what}: {text!r} is not a GUID") from None


def _codes(names: list, table: dict[str, int], what: str) -> tuple[int, ...]:
    try:
        return tuple(table[n] for n in names)
    except (KeyError, TypeError):
        raise ProfileError(f"{what}: unknown name in {names!r} (known: {sorted(table)})") from None


def _dialect(text: str, what: str) -> int:
    code = smb2.DIALECT_CODES.get(text)
    if code is None:
        raise ProfileError(f"{what}: unknown dialect {text!r}")
    return code


_SMB1_KEYS = {
    "enabled", "security_mode", "max_mpx", "max_vcs", "max_buffer", "max_raw", "capabilities", "timezone",
    "native_os", "native_lm", "primary_domain", "primary_domain_in_extended_reply", "reply_flags",
    "reply_flags2", "first_uid", "first_tid", "server_guid", "server_name_in_negotiate",
}  # fmt: skip


def _smb1(d: dict, name: str) -> Smb1Config:
    d = _keys(d, _SMB1_KEYS, f"{name}.smb1")
    enabled = {int(k): bool(v) for k, v in d["enabled"].items()}
    if not set(enabled) <= set(ROLES):
        raise ProfileError(f"{name}.smb1.enabled: roles are 445 and 139")
    kw: dict[str, Any] = {"enabled": enabled}
    for key in ("security_mode", "max_mpx", "max_vcs", "max_buffer", "max_raw", "capabilities", "timezone",
                "reply_flags", "first_uid", "first_tid"):  # fmt: skip
        if key in d:
            kw[key] = _int(d[key], f"{name}.smb1.{key}")
    for key in ("native_os", "native_lm", "primary_domain"):
        if key in d:
            kw[key] = str(d[key])
    if d.get("reply_flags2", "echo") not in ("echo", "samba"):
        raise ProfileError(f"{name}.smb1.reply_flags2: echo (Windows) or samba")
    kw["samba_flags2"] = d.get("reply_flags2") == "samba"
    for key in ("primary_domain_in_extended_reply", "server_name_in_negotiate"):
        if key in d:
            kw[key] = bool(d[key])
    if "server_guid" in d:
        kw["server_guid"] = _guid(d["server_guid"], f"{name}.smb1.server_guid")
    if any(enabled.values()) and not (kw.get("native_os") and kw.get("native_lm")):
        raise ProfileError(f"{name}.smb1: an SMB1 host needs native_os and native_lm")
    return Smb1Config(**kw)


_SMB2_KEYS = {
    "min_dialect", "max_dialect", "security_mode", "capabilities", "max_size", "server_guid", "start_time",
    "ciphers", "compression", "compression_chained", "signing_algorithms", "null_session_flag",
}  # fmt: skip


def _smb2(d: dict, name: str) -> Smb2Config:
    d = _keys(d, _SMB2_KEYS, f"{name}.smb2")
    lo, hi = _dialect(d["min_dialect"], name), _dialect(d["max_dialect"], name)
    if lo > hi:
        raise ProfileError(f"{name}.smb2: min_dialect above max_dialect")
    caps = {_dialect(k, name): _int(v, f"{name}.smb2.capabilities") for k, v in d["capabilities"].items()}
    missing = [smb2.DIALECTS[x] for x in smb2.ALL_DIALECTS if lo <= x <= hi and x not in caps]
    if missing:
        raise ProfileError(f"{name}.smb2.capabilities: no value for {missing}")
    return Smb2Config(
        min_dialect=lo,
        max_dialect=hi,
        security_mode=_int(d["security_mode"], f"{name}.smb2.security_mode"),
        capabilities=caps,
        max_size=_int(d["max_size"], f"{name}.smb2.max_size"),
        server_guid=_guid(d["server_guid"], f"{name}.smb2.server_guid"),
        start_time=bool(d["start_time"]),
        ciphers=_codes(d.get("ciphers", []), CIPHER_CODES, f"{name}.smb2.ciphers"),
        compression=_codes(d.get("compression", []), COMPRESSION_CODES, f"{name}.smb2.compression"),
        compression_chained=bool(d.get("compression_chained", False)),
        signing_algorithms=_codes(d.get("signing_algorithms", []), SIGNING_CODES, f"{name}.smb2.signing_algorithms"),
        null_session_flag=bool(d.get("null_session_flag", True)),
    )


_AV_NAMES = (
    ("nb_domain", ntlm.AV_NB_DOMAIN),
    ("nb_computer", ntlm.AV_NB_COMPUTER),
    ("dns_domain", ntlm.AV_DNS_DOMAIN),
    ("dns_computer", ntlm.AV_DNS_COMPUTER),
    ("dns_tree", ntlm.AV_DNS_TREE),
)


def _ntlm(d: dict, name: str) -> NtlmConfig:
    d = _keys(d, {"flags", "target_name", "timestamp", "version"} | {k for k, _ in _AV_NAMES}, f"{name}.ntlm")
    pairs = tuple((av_id, str(d[key]).encode("utf-16-le")) for key, av_id in _AV_NAMES if key in d)
    try:
        major, minor, build = (int(x) for x in str(d["version"]).split("."))
    except ValueError:
        raise ProfileError(f"{name}.ntlm.version: expected major.minor.build") from None
    return NtlmConfig(_int(d["flags"], f"{name}.ntlm.flags"), str(d["target_name"]), pairs, bool(d["timestamp"]), (major, minor, build))


GUEST_ACCOUNTS = ("disabled", "enabled", "absent")


def _access(d: dict, name: str, kind: str) -> Access:
    d = _keys(d, {"anonymous", "guest", "anonymous_refusal", "guest_refusal", "share_listing", "null_session_pipes",
                  "guest_account"},
              f"{name}.access")
    listing = d.get("share_listing", "denied")
    pipes = d.get("null_session_pipes")
    guest = {k: bool(v) for k, v in d.get("guest", {}).items()}
    # Windows always has a Guest account, disabled unless guest logons work;
    # Samba has none unless a profile says so.
    default_account = "enabled" if any(guest.values()) else "disabled" if kind == "windows" else "absent"
    account = d.get("guest_account", default_account)
    if account not in GUEST_ACCOUNTS:
        raise ProfileError(f"{name}.access.guest_account: one of {GUEST_ACCOUNTS}")
    if pipes is not None and not isinstance(pipes, list):
        raise ProfileError(f"{name}.access.null_session_pipes: a list of pipe names")
    if listing not in ("anonymous", "guest", "denied"):
        raise ProfileError(f"{name}.access.share_listing: anonymous, guest or denied")
    return Access(
        anonymous={k: bool(v) for k, v in d.get("anonymous", {}).items()},
        guest=guest,
        anonymous_refusal=_int(d.get("anonymous_refusal", status.ACCESS_DENIED), f"{name}.access"),
        guest_refusal=_int(d.get("guest_refusal", status.LOGON_FAILURE), f"{name}.access"),
        share_listing=listing,
        guest_account=account,
        null_session_pipes=None if pipes is None else tuple(str(p).lower() for p in pipes),
    )


MAX_ENTRIES = 32  # entries a share's listing may show: the lab keeps them in memory per connection


def _entries(items: Any, what: str) -> tuple[tuple[str, bool, int], ...]:
    """[{"name": "Music", "dir": true}, {"name": "a.txt", "size": 1024}] -> ((name, is_dir, size), ...)."""
    if not isinstance(items, list) or len(items) > MAX_ENTRIES:
        raise ProfileError(f"{what}: a list of at most {MAX_ENTRIES} entries")
    out = []
    for item in items:
        item = _keys(item, {"name", "dir", "size"}, what)
        entry = str(item.get("name", ""))
        if not entry or len(entry) > 64 or entry in (".", "..") or any(c in entry for c in '\\/:*?"<>|'):
            raise ProfileError(f"{what}: bad entry name {entry!r}")
        size = _int(item.get("size", 0), f"{what}.size")
        if not 0 <= size < 1 << 40 or (item.get("dir") and size):
            raise ProfileError(f"{what}: bad size for {entry!r}")
        out.append((entry, bool(item.get("dir", False)), size))
    if len({e[0].upper() for e in out}) != len(out):
        raise ProfileError(f"{what}: duplicate entry names")
    return tuple(out)


def _share(d: dict, name: str) -> Share:
    d = _keys(d, {"name", "type", "remark", "writable", "anonymous", "guest", "special", "maximal_access", "entries"},
              f"{name}.shares")
    if d.get("type") not in ("ipc", "disk", "print"):
        raise ProfileError(f"{name}.shares: type is ipc, disk or print")
    access = d.get("maximal_access")
    return Share(
        name=str(d["name"]),
        type=d["type"],
        remark=str(d.get("remark", "")),
        writable=bool(d.get("writable", False)),
        anonymous=bool(d.get("anonymous", False)),
        guest=bool(d.get("guest", False)),
        special=bool(d.get("special", False)),
        maximal_access=None if access is None else _int(access, f"{name}.shares.maximal_access"),
        entries=_entries(d.get("entries", []), f"{name}.shares.entries"),
    )


def _expected(d: dict, name: str) -> dict[str, str]:
    out = {}
    for key, value in d.items():
        base, _, port = key.partition(":")
        if base not in FINDING_IDS or (port and (base != "smbv1-enabled" or int(port) not in ROLES)):
            raise ProfileError(f"{name}.expected: unknown finding {key!r}")
        if base == "smbv1-enabled" and not port:
            raise ProfileError(f"{name}.expected: key smbv1-enabled by port (smbv1-enabled:445, :139)")
        if base == "eol-os":
            raise ProfileError(f"{name}.expected: eol-os is derived from os_candidates, do not write it")
        if value not in STATUSES:
            raise ProfileError(f"{name}.expected[{key}]: {value!r} is not one of {STATUSES}")
        out[key] = value
    return out


def _quic(d: dict, name: str) -> QuicConfig:
    d = _keys(d, {"alpn", "names", "valid_days"}, f"{name}.quic")
    alpn, names = d.get("alpn"), d.get("names")
    if not (isinstance(alpn, list) and alpn and all(isinstance(a, str) and 0 < len(a) < 256 for a in alpn)):
        raise ProfileError(f"{name}.quic.alpn: a list of protocol names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise ProfileError(f"{name}.quic.names: the certificate's DNS names, the first its subject")
    days = _int(d.get("valid_days", 365), f"{name}.quic.valid_days")
    if days < 1:
        raise ProfileError(f"{name}.quic.valid_days: at least 1")
    return QuicConfig(tuple(alpn), tuple(names), days)


_TOP_KEYS = {
    "name", "description", "kind", "behaviour", "sources", "netbios", "smb1", "smb2", "spnego", "ntlm",
    "access", "shares", "ms17_010", "trans2_session_setup_status", "doublepulsar", "samba_version",
    "os_candidates", "expected", "quic",
}  # fmt: skip


def parse_profile(d: dict) -> Profile:
    """Validate one profile document and build the Profile."""
    name = str(d.get("name", "?"))
    _keys(d, _TOP_KEYS, name)
    kind, behaviour = d.get("kind"), d.get("behaviour", "normal")
    if kind not in KINDS or behaviour not in BEHAVIOURS:
        raise ProfileError(f"{name}: kind must be one of {KINDS}, behaviour one of {BEHAVIOURS}")
    nb = _keys(d.get("netbios", {}), {"name", "domain", "accept_any_called_name"}, f"{name}.netbios")
    kw: dict[str, Any] = {
        "name": name,
        "description": str(d.get("description", "")),
        "kind": kind,
        "behaviour": behaviour,
        "sources": dict(d.get("sources", {})),
        "expected": _expected(d.get("expected", {}), name),
        "netbios_name": str(nb.get("name", "")),
        "netbios_domain": str(nb.get("domain", "")),
        "accept_any_called_name": bool(nb.get("accept_any_called_name", False)),
    }
    if d.get("smb1"):
        kw["smb1"] = _smb1(d["smb1"], name)
    if d.get("smb2"):
        kw["smb2"] = _smb2(d["smb2"], name)
    if "spnego" in d:
        sp = _keys(d["spnego"], {"mechs", "hint"}, f"{name}.spnego")
        kw["spnego_mechs"] = tuple(MECH_OIDS[m] for m in sp["mechs"])
        kw["spnego_hint"] = sp.get("hint")
    if "ntlm" in d:
        kw["ntlm"] = _ntlm(d["ntlm"], name)
    if "access" in d:
        kw["access"] = _access(d["access"], name, kind)
    kw["shares"] = tuple(_share(s, name) for s in d.get("shares", []))
    ms17 = d.get("ms17_010", "patched")
    if ms17 not in MS17_010_STATUS:
        raise ProfileError(f"{name}.ms17_010: one of {sorted(MS17_010_STATUS)}")
    kw["ms17_010"] = ms17
    if "trans2_session_setup_status" in d:
        kw["trans2_status"] = _int(d["trans2_session_setup_status"], f"{name}.trans2_session_setup_status")
    if d.get("doublepulsar"):
        dp = _keys(d["doublepulsar"], {"signature", "xor_key", "arch"}, f"{name}.doublepulsar")
        sig = bytes.fromhex(dp["signature"])
        if len(sig) != 8:
            raise ProfileError(f"{name}.doublepulsar.signature: 8 bytes")
        if "xor_key" in dp and _int(dp["xor_key"], name) != doublepulsar_key(sig):
            raise ProfileError(f"{name}.doublepulsar.xor_key does not match the signature bytes")
        arch = "x86" if sig[4:8] == b"\x00" * 4 else "x64"
        if dp.get("arch", arch) != arch:
            raise ProfileError(f"{name}.doublepulsar.arch: the signature says {arch}")
        kw["doublepulsar"] = sig
    if d.get("samba_version"):
        kw["samba_version"] = str(d["samba_version"])
    kw["os_candidates"] = tuple(
        Candidate(str(c["name"]), _dt.date.fromisoformat(c["support_end"])) for c in d.get("os_candidates", [])
    )
    if d.get("quic"):
        kw["quic"] = _quic(d["quic"], name)
    if behaviour == "normal" and kind != "special":
        smb1cfg = kw.get("smb1")
        speaks_ntlmssp = kw.get("smb2") is not None or (
            smb1cfg is not None and smb1cfg.capabilities & 0x80000000)  # CAP_EXTENDED_SECURITY
        if speaks_ntlmssp and kw.get("ntlm") is None:
            raise ProfileError(f"{name}: a host with extended security needs its ntlm section")
        if not any(s.type == "ipc" for s in kw["shares"]):
            raise ProfileError(f"{name}: a normal host needs an IPC$ share")
    return Profile(**kw)
