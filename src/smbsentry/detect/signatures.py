"""The detector's signatures: stable ids, texts, categories and severities.

Severity follows Suricata: 1 is the most severe, 3 the least.  The ids are
part of the outside contract (alerts are matched on them by scripts): never
rename one; add new ones instead.

What each signature looks at (the code is in one module per family:
detect/smb1_exploits.py, smbghost.py, killswitch.py, wormscan.py; the
reasoning and the limits are in the package documentation, smbsentry.detect):

``ms17-010-probe``
    SMB_COM_TRANSACTION request with setup word 0x0023 (PeekNamedPipe) on
    FID 0: the MS17-010 vulnerability check of nmap, Metasploit and WannaCry.
``ms17-010-vulnerable-reply``
    The answer to such a probe is STATUS_INSUFF_SERVER_RESOURCES (0xC0000205):
    the server is unpatched.
``eternalblue``
    NT_TRANSACT with the undefined function 0 and a TotalDataCount above
    0xFFFF, a TRANSACTION2_SECONDARY continuing an NT_TRANSACT (transaction
    type confusion), or a run of TRANSACTION2_SECONDARY requests belonging to
    no TRANSACTION2 on one flow.
``eternalromance``
    EternalRomance / EternalSynergy: a WRITE_ANDX addressed to a transaction
    still in progress (same PID, MID, TID, UID), or a TRANSACTION_SECONDARY
    for a transaction that was never opened on the flow (the exploit rewrote
    the MID in server memory).  The two exploits use the same bug through the
    same wire pattern; the detector cannot tell them apart and does not try.
``eternalchampion``
    NT_TRANSACT_SECONDARY racing an NT_TRANSACT that was already complete (or
    uses the unimplemented NT_TRANSACT_RENAME function) before the server
    answered it.
``doublepulsar-ping`` / ``doublepulsar-upload`` / ``doublepulsar-uninstall``
    TRANSACTION2 SESSION_SETUP request whose Timeout encodes an implant
    command (byte sum & 0xFF: 0x23 ping, 0xC8 exec/upload, 0x77 uninstall);
    an upload also carries data.
``doublepulsar-reply``
    A TRANSACTION2 reply whose MID is the MID of an unanswered Trans2
    SESSION_SETUP request on the same flow plus 16 (the implant's answer).
``smbghost-exploit``
    SMB 3.1.1 compression transform header (0xFC 'SMB') whose Offset or sizes
    cannot be valid (CVE-2020-0796 crash / overflow proofs of concept).
``wannacry-killswitch-dns``
    DNS query (UDP 53) for a known WannaCry kill-switch domain.
``smb-worm-scan``
    One source sending connection attempts (SYNs) to many distinct
    destinations on 445/139 within a window (thresholds configurable).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SIGNATURES", "Signature", "severity_at_least"]


@dataclass(frozen=True, slots=True)
class Signature:
    id: str
    signature: str
    category: str
    severity: int


_EXPLOIT = "Attempted Administrator Privilege Gain"
_TROJAN = "A Network Trojan was detected"
_SCAN = "Detection of a Network Scan"
_LEAK = "Attempted Information Leak"
_DOS = "Attempted Denial of Service"

SIGNATURES: dict[str, Signature] = {
    s.id: s
    for s in (
        Signature(
            "ms17-010-probe",
            "SMBv1 PeekNamedPipe on FID 0: MS17-010 vulnerability probe",
            _SCAN,
            2,
        ),
        Signature(
            "ms17-010-vulnerable-reply",
            "MS17-010 probe answered STATUS_INSUFF_SERVER_RESOURCES: server is unpatched",
            _LEAK,
            1,
        ),
        Signature(
            "eternalblue",
            "EternalBlue: NT_TRANSACT / TRANSACTION2_SECONDARY type confusion (MS17-010)",
            _EXPLOIT,
            1,
        ),
        Signature(
            "eternalromance",
            "EternalRomance/EternalSynergy: write into an SMBv1 transaction in progress (MS17-010)",
            _EXPLOIT,
            1,
        ),
        Signature(
            "eternalchampion",
            "EternalChampion: NT_TRANSACT_SECONDARY racing a complete NT transaction (MS17-010)",
            _EXPLOIT,
            1,
        ),
        Signature(
            "doublepulsar-ping",
            "DoublePulsar implant ping: Trans2 SESSION_SETUP with the implant's command encoding",
            _TROJAN,
            1,
        ),
        Signature(
            "doublepulsar-reply",
            "DoublePulsar implant answer: Trans2 reply MID = request MID + 16",
            _TROJAN,
            1,
        ),
        Signature(
            "doublepulsar-upload",
            "DoublePulsar payload upload/exec: Trans2 SESSION_SETUP carrying data",
            _TROJAN,
            1,
        ),
        Signature(
            "doublepulsar-uninstall",
            "DoublePulsar uninstall command: Trans2 SESSION_SETUP with the implant's burn code",
            _TROJAN,
            1,
        ),
        Signature(
            "smbghost-exploit",
            "SMBGhost (CVE-2020-0796): SMB 3.1.1 compression transform with impossible offset or size",
            _DOS,
            1,
        ),
        Signature(
            "wannacry-killswitch-dns",
            "WannaCry kill-switch domain lookup: infected host",
            _TROJAN,
            1,
        ),
        Signature(
            "smb-worm-scan",
            "One source connecting to many SMB hosts (445/139): worm-like scan",
            _SCAN,
            2,
        ),
    )
}

#: --fail-on level -> the largest Suricata severity number it covers.
FAIL_ON_LEVELS = {"critical": 1, "high": 1, "medium": 2, "low": 3}


def severity_at_least(severity: int, level: str) -> bool:
    """True when an alert of ``severity`` (1 most severe) is at or above ``level``."""
    return severity <= FAIL_ON_LEVELS[level]
