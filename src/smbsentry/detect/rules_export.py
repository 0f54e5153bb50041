"""The detector's signatures as Suricata or Snort rules, for sensors already deployed.

``smbsentry detect --export-rules suricata|snort`` writes one rules file.
Each rule names the detector signature it stands for (``metadata:
smbsentry_signature <id>``), so an alert from a sensor and an alert from
``smbsentry detect`` are matched on the same id.

Sids
    9710000-9710099, never reused: a rule that changes gets a new ``rev``, a
    rule that goes away leaves its sid unused.  9710001-9710049 alert,
    9710050-9710059 only set flowbits (``noalert``), 9710060-9710099 are the
    WannaCry kill-switch domains, keyed by name (a new domain takes the next
    free sid).

What a rule language cannot say, the rules approximate, and the file says
where (``# approximation:`` lines); a detector signature with no rule at all
is listed in :data:`NOT_EXPRESSED` with the reason.  The detector keeps
per-transaction state (PID, MID, TID, UID) and sums the DoublePulsar Timeout
bytes; rules see one message at a time, with flowbits shared by the whole
flow.  Offsets assume each SMB message starts its TCP segment, behind its
4-byte NetBIOS session header, which is how Windows, Samba and the exploit
tools send them.

Snort output follows Snort 2.9 (``detection_filter``, ``flow:stateless`` on
the SYN rule); Suricata output uses ``threshold`` and ``target``.  Both parse
with idstools, and Suricata 7 loads both and runs the Suricata file on the
capture corpus (tests/test_rules_export.py).  Captures that begin
mid-connection (no handshake) need Suricata's ``stream.midstream: true``,
since the SMB rules ask for an established flow.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import smb1
from ..protocol.status import NtStatus
from .dns import KILLSWITCH_DOMAINS
from .signatures import SIGNATURES
from .smbghost import MAX_ORIGINAL_SIZE

__all__ = ["FORMATS", "NOT_EXPRESSED", "SID_RANGE", "Rule", "export_rules", "rules"]

FORMATS = ("suricata", "snort")
SID_RANGE = range(9710000, 9710100)
KILLSWITCH_SIDS = {  # domain -> sid; append new domains, never renumber
    "iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com": 9710060,
    "ifferfsodp9ifjaposdfjhgosurijfaewrwergwea.com": 9710061,
    "iuqssfsodp9ifjaposdfjhgosurijfaewrwergwea.com": 9710062,
    "ayylmaotjhsstasdfasdfasdfasdfasdfasdfasdf.com": 9710063,
    "iuqerfsodp9ifjaposdfjhgosurijfaewrwergweb.com": 9710064,
    "ifferfsodp9ifjaposdfjhgosurijfaewrwergwea.test": 9710065,
    "ifferfsodp9ifjaposdfjhgosurijfaewrwergwea.testing": 9710066,
}

#: Signatures no rule stands for on its own, and why.
NOT_EXPRESSED = {
    "doublepulsar-uninstall": "the command is the byte sum of the Trans2 Timeout (0x77); rules cannot add "
    "bytes, so an uninstall (no data) raises the doublepulsar-ping rule, which says so",
}

# Offsets in a TCP payload that starts with the NetBIOS session header.
NB = 4
CMD = NB + 4  # SMB1 command byte
FLAGS = NB + 9  # SMB1 Flags (0x80: reply)
MID = NB + 30  # SMB1 MID, little-endian
WORDS = NB + smb1.Header.size + 1  # the word block (after WordCount)
# TRANSACTION / TRANSACTION2 request words (MS-CIFS 2.2.4.33.1 / 2.2.4.46.1)
T_TOTAL_PARAMS, T_TOTAL_DATA, T_DATA_COUNT, T_SETUP_COUNT = WORDS, WORDS + 2, WORDS + 22, WORDS + 26
# NT_TRANSACT request words (MS-CIFS 2.2.4.62.1)
NT_TOTAL_DATA, NT_FUNCTION = WORDS + 7, WORDS + 36
# SMB2 COMPRESSION_TRANSFORM_HEADER (MS-SMB2 2.2.42.1)
CT_ORIGINAL_SIZE, CT_OFFSET = NB + 4, NB + 12

SMB1_MAGIC, TRANSFORM_MAGIC = b"\xffSMB", b"\xfcSMB"
INSUFF_SERVER_RESOURCES = NtStatus.INSUFF_SERVER_RESOURCES.to_bytes(4, "little")
FUNCTION_NONE, FUNCTION_RENAME = (0).to_bytes(2, "little"), (5).to_bytes(2, "little")
FUZZBUNCH_MIDS = (65, 66)  # the MIDs of FuzzBunch's DoublePulsar pings (the corpus captures)

_CLASSTYPES = {
    "Attempted Administrator Privilege Gain": "attempted-admin",
    "A Network Trojan was detected": "trojan-activity",
    "Detection of a Network Scan": "network-scan",
    "Attempted Information Leak": "attempted-recon",
    "Attempted Denial of Service": "attempted-dos",
}

_MS17_010 = ("url,learn.microsoft.com/en-us/security-updates/securitybulletins/2017/ms17-010",
             "url,github.com/0xl3x1/zeek-EternalSafety")
_DOUBLEPULSAR = ("url,zerosum0x0.blogspot.com/2017/04/doublepulsar-initial-smb-backdoor-ring.html",
                 "url,github.com/0xl3x1/zeek-EternalSafety")
_SMBGHOST = ("cve,2020-0796", "url,msrc.microsoft.com/update-guide/vulnerability/ADV200005",
             "url,learn.microsoft.com/en-us/openspecs/windows_protocols/ms-smb2/1d435f21-9a21-4f4c-828e-624a176cf2a0")
_WANNACRY = ("url,www.cisa.gov/news-events/alerts/2017/05/12/indicators-associated-wannacry-ransomware",)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule, format-neutral: `options` are the detection options in the
    syntax both engines share; the renderer adds the header, flow, msg,
    threshold, references, classtype, metadata, sid and rev."""

    sid: int
    signature: str  # the detector signature id (signatures.py)
    variant: str  # what this rule matches, in the msg
    options: tuple[str, ...]
    references: tuple[str, ...]
    direction: str = "to_server"  # to_server | to_client | either | dns
    noalert: bool = False
    approximation: str | None = None  # where the rule differs from the detector


def content(data: bytes) -> str:
    """A content string: ASCII letters and digits as text, the rest |hex|."""
    out, hexrun = [], []
    for b in data:
        if chr(b).isascii() and chr(b).isalnum():
            if hexrun:
                out.append("|" + " ".join(hexrun) + "|")
                hexrun = []
            out.append(chr(b))
        else:
            hexrun.append(f"{b:02X}")
    if hexrun:
        out.append("|" + " ".join(hexrun) + "|")
    return '"' + "".join(out) + '"'


def _smb1_request(command: int) -> tuple[str, ...]:
    return (f"content:{content(SMB1_MAGIC + bytes([command]))}; offset:{NB}; depth:5",
            f"byte_test:1,!&,{smb1.FLAGS_REPLY},{FLAGS}")


def _smb1_reply(command: int, status: bytes = b"") -> tuple[str, ...]:
    return (f"content:{content(SMB1_MAGIC + bytes([command]) + status)}; offset:{NB}; depth:{5 + len(status)}",
            f"byte_test:1,&,{smb1.FLAGS_REPLY},{FLAGS}")


def _smb_rules() -> list[Rule]:
    trans2_ss = f"content:{content(bytes([1, 0, 0x0E, 0]))}; offset:{T_SETUP_COUNT}; depth:4"
    return [
        Rule(9710001, "ms17-010-probe", "PeekNamedPipe on FID 0",
             _smb1_request(smb1.TRANSACTION) + (
                 f"content:{content(bytes([2, 0, 0x23, 0, 0, 0]))}; offset:{T_SETUP_COUNT}; depth:6",
                 "flowbits:set,smbsentry.ms17_probe"), _MS17_010),
        Rule(9710002, "ms17-010-vulnerable-reply", "STATUS_INSUFF_SERVER_RESOURCES after the probe",
             ("flowbits:isset,smbsentry.ms17_probe",) + _smb1_reply(smb1.TRANSACTION, INSUFF_SERVER_RESOURCES),
             _MS17_010, direction="to_client",
             approximation="any TRANSACTION reply with 0xC0000205 after a probe on the flow, not the probe's MID"),
        Rule(9710003, "eternalblue", "NT_TRANSACT function 0 with TotalDataCount above 0xFFFF",
             _smb1_request(smb1.NT_TRANSACT) + (
                 f"byte_test:4,>,65535,{NT_TOTAL_DATA},little",
                 f"content:{content(FUNCTION_NONE)}; offset:{NT_FUNCTION}; depth:2"), _MS17_010 + ("cve,2017-0144",)),
        Rule(9710004, "eternalblue", "NT_TRANSACT undefined function with TotalDataCount above 0xFFFF",
             _smb1_request(smb1.NT_TRANSACT) + (
                 f"byte_test:4,>,65535,{NT_TOTAL_DATA},little",
                 f"byte_test:2,>,8,{NT_FUNCTION},little"), _MS17_010 + ("cve,2017-0144",),
             approximation="the detector's other two EternalBlue patterns (TRANSACTION2_SECONDARY continuing an "
                           "NT_TRANSACT, orphan TRANSACTION2_SECONDARY runs) need per-MID state"),
        Rule(9710050, "eternalromance", "TRANSACTION sent in several parts",
             _smb1_request(smb1.TRANSACTION) + (
                 f"byte_extract:2,{T_TOTAL_DATA},smbsentry_total_data,little",
                 f"byte_test:2,<,smbsentry_total_data,{T_DATA_COUNT},little",
                 "flowbits:set,smbsentry.trans_open", "flowbits:noalert"), _MS17_010, noalert=True),
        Rule(9710005, "eternalromance", "WRITE_ANDX while a TRANSACTION is still being sent",
             ("flowbits:isset,smbsentry.trans_open",) + _smb1_request(smb1.WRITE_ANDX),
             _MS17_010 + ("cve,2017-0145",),
             approximation="the detector requires the same PID/MID/TID/UID and the transaction still incomplete; "
                           "the rule any WRITE_ANDX after a multi-part TRANSACTION on the flow. Its other pattern "
                           "(TRANSACTION_SECONDARY for a never-opened transaction) needs per-MID state"),
        Rule(9710051, "eternalchampion", "NT_TRANSACT_RENAME",
             _smb1_request(smb1.NT_TRANSACT) + (
                 f"content:{content(FUNCTION_RENAME)}; offset:{NT_FUNCTION}; depth:2",
                 "flowbits:set,smbsentry.nt_rename", "flowbits:noalert"), _MS17_010, noalert=True),
        Rule(9710006, "eternalchampion", "NT_TRANSACT_SECONDARY after an NT_TRANSACT_RENAME",
             ("flowbits:isset,smbsentry.nt_rename",) + _smb1_request(smb1.NT_TRANSACT_SECONDARY),
             _MS17_010 + ("cve,2017-0146",),
             approximation="the detector also fires on a secondary racing a complete NT_TRANSACT (per-MID byte "
                           "counts); the rule only on the RENAME variant"),
        Rule(9710007, "doublepulsar-ping", "Trans2 SESSION_SETUP without data (ping or uninstall)",
             _smb1_request(smb1.TRANSACTION2) + (
                 trans2_ss, f"byte_test:2,=,0,{T_TOTAL_DATA},little", "flowbits:set,smbsentry.dp_request"),
             _DOUBLEPULSAR,
             approximation="the detector tells ping (0x23) from uninstall (0x77) and from other Timeouts by the "
                           "Timeout byte sum; the rule takes any Trans2 SESSION_SETUP without data (EternalRomance "
                           "sends one too)"),
        Rule(9710008, "doublepulsar-upload", "Trans2 SESSION_SETUP carrying a payload",
             _smb1_request(smb1.TRANSACTION2) + (
                 trans2_ss, f"byte_test:2,=,12,{T_TOTAL_PARAMS},little", f"byte_test:2,>,0,{T_TOTAL_DATA},little",
                 "flowbits:set,smbsentry.dp_request"), _DOUBLEPULSAR),
        Rule(9710009, "doublepulsar-reply", "Trans2 reply with MID 81 or 82 after a SESSION_SETUP",
             ("flowbits:isset,smbsentry.dp_request",) + _smb1_reply(smb1.TRANSACTION2) + (
                 f"byte_test:2,>,{FUZZBUNCH_MIDS[0] + 15},{MID},little",
                 f"byte_test:2,<,{FUZZBUNCH_MIDS[-1] + 17},{MID},little"), _DOUBLEPULSAR, direction="to_client",
             approximation="the detector matches any request MID + 16; the rule the answers to MID 65 and 66, "
                           "the MIDs FuzzBunch and WannaCry ping with"),
        Rule(9710010, "smbghost-exploit", "compression transform Offset beyond any NetBIOS message",
             (f"content:{content(TRANSFORM_MAGIC)}; offset:{NB}; depth:4",
              f"byte_test:4,>,16777215,{CT_OFFSET},little"), _SMBGHOST, direction="either",
             approximation="the detector compares Offset with this message's length and checks the LZNT1 ratio "
                           "and chained payloads; rules cannot compare two fields"),
        Rule(9710011, "smbghost-exploit", "compression transform original size beyond any SMB message",
             (f"content:{content(TRANSFORM_MAGIC)}; offset:{NB}; depth:4",
              f"byte_test:4,>,{MAX_ORIGINAL_SIZE},{CT_ORIGINAL_SIZE},little"), _SMBGHOST, direction="either"),
    ]


def _dns_rules() -> list[Rule]:
    out = []
    for domain in KILLSWITCH_DOMAINS:
        wire = b"".join(bytes([len(label)]) + label.encode("ascii") for label in domain.split(".")) + b"\x00"
        out.append(Rule(KILLSWITCH_SIDS[domain], "wannacry-killswitch-dns", domain,
                        ("byte_test:1,!&,128,2", f"content:{content(wire)}; offset:12; nocase"),
                        _WANNACRY, direction="dns"))
    return out


def rules(scan_threshold: int = 20, scan_window: float = 10.0) -> list[Rule]:
    """Every rule, in sid order (the worm-scan threshold is the detector's --scan-threshold/--scan-window)."""
    worm = Rule(9710012, "smb-worm-scan", f"{scan_threshold} SYNs to 445/139 from one source in {scan_window:g} s",
                ("flags:S,12", f"#threshold {scan_threshold} {max(1, round(scan_window))}"), _MS17_010,
                approximation="the detector counts distinct destinations; the rule counts connection attempts, so "
                              "one source opening many connections to one host (EternalBlue's grooming) raises it too")
    return sorted(_smb_rules() + [worm] + _dns_rules(), key=lambda r: r.sid)


def _header(rule: Rule) -> str:
    if rule.direction == "dns":
        return "alert udp any any -> any 53"
    if rule.direction == "to_client":
        return "alert tcp any [139,445] -> any any"
    if rule.direction == "either":
        return "alert tcp any any <> any [139,445]"
    return "alert tcp any any -> any [139,445]"


def render(rule: Rule, fmt: str) -> str:
    sig = SIGNATURES[rule.signature]
    opts = [f'msg:"smbsentry {rule.signature}: {rule.variant}"']
    if rule.signature == "smb-worm-scan":
        opts.append("flow:to_server" if fmt == "suricata" else "flow:stateless")  # a SYN: no session yet
    elif rule.direction == "to_server":
        opts.append("flow:established,to_server")
    elif rule.direction == "to_client":
        opts.append("flow:established,to_client")
    elif rule.direction == "either":
        opts.append("flow:established")
    for option in rule.options:
        if option.startswith("#threshold "):
            count, seconds = option.split()[1:]
            if fmt == "snort":
                opts.append(f"detection_filter:track by_src, count {count}, seconds {seconds}")
            else:
                opts.append(f"threshold:type both, track by_src, count {count}, seconds {seconds}")
        else:
            opts.append(option)
    opts += [f"reference:{ref}" for ref in rule.references]
    opts.append(f"classtype:{_CLASSTYPES[sig.category]}")
    if fmt == "suricata" and not rule.noalert and rule.direction != "dns":
        opts.append("target:dest_ip" if rule.direction != "to_client" else "target:src_ip")
    opts += [f"priority:{sig.severity}", f"metadata:smbsentry_signature {rule.signature}",
             f"sid:{rule.sid}", "rev:1"]
    return f"{_header(rule)} ({'; '.join(opts)};)"


def export_rules(fmt: str, scan_threshold: int = 20, scan_window: float = 10.0) -> str:
    """The rules file text for `fmt` (suricata | snort)."""
    if fmt not in FORMATS:
        raise ValueError(f"rule format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    lines = [
        f"# smbsentry detector signatures as {fmt} rules ({'Snort 2.9' if fmt == 'snort' else 'Suricata 6+'} syntax).",
        f"# sids {SID_RANGE.start}-{SID_RANGE.stop - 1} are smbsentry's and never reused; metadata smbsentry_signature",
        "# names the detector signature (smbsentry detect --signatures) each rule stands for.",
        "# Offsets assume an SMB message starts its TCP segment behind the 4-byte NetBIOS header.",
    ]
    for signature, why in NOT_EXPRESSED.items():
        lines.append(f"# not expressed: {signature}: {why}")
    for rule in rules(scan_threshold, scan_window):
        lines.append("")
        if rule.approximation:
            lines.append(f"# approximation: {rule.approximation}")
        lines.append(render(rule, fmt))
    return "\n".join(lines) + "\n"
