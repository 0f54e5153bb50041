"""DoublePulsar implant ping: TRANSACTION2 SESSION_SETUP with MID 65.

An implanted host answers with MID 81 (the request's MID plus 16) and
STATUS_NOT_IMPLEMENTED; its signature field then carries the XOR key
(bytes 0-3, through the implant's derivation) and the architecture
(bytes 4-7: zero means x86).  A clean host keeps the MID.  Only the ping is
sent, never the implant's uninstall ("burn") command.  Honeypots such as
dionaea also answer MID 81: the finding says what was seen, an implant answer.
"""

from __future__ import annotations

from ..model import Finding
from ..protocol import smb1, status
from ..protocol.doublepulsar import architecture, xor_key
from .base import Check, HostAccess
from .registry import register

PING_MID = 65
PING_TIMEOUT = 0x00A4D9A6  # the implant reads its command from the Timeout field: ping
SESSION_SETUP = 0x000E


def ping_request(uid: int, tid: int) -> bytes:
    return smb1.transaction_request(
        smb1.TRANSACTION2,
        mid=PING_MID,
        uid=uid,
        tid=tid,
        setup=(SESSION_SETUP,),
        params=b"\x00" * 12,
        max_param=1,
        max_data=0,
        timeout=PING_TIMEOUT,
    )


@register
class DoublePulsar(Check):
    id = "doublepulsar"
    needs = frozenset({"smb1", "ipc"})

    async def run(self, host: HostAccess) -> list[Finding]:
        ipc, why = await host.smb1_ipc()
        if ipc is None:
            return [self.unknown(f"ping needs an SMB1 session on IPC$: {why}")]
        raw = await ipc.request(ping_request(ipc.uid, ipc.tid))
        reply = smb1.parse_transaction_response(raw)
        mid = reply.mid
        if mid == PING_MID + 16:
            sig = reply.header.signature
            key, arch = xor_key(sig), architecture(sig)
            return [
                self.finding(
                    "vulnerable",
                    evidence=(
                        f"Trans2 SESSION_SETUP with MID {PING_MID} answered with MID {mid} "
                        f"({status.describe(reply.status)}): implant answer; XOR key 0x{key:08X}, {arch}"
                    ),
                    port=ipc.port,
                    details={"xor_key": f"0x{key:08X}", "architecture": arch, "signature": sig.hex()},
                )
            ]
        if mid == PING_MID:
            return [
                self.finding(
                    "not_vulnerable",
                    evidence=f"Trans2 SESSION_SETUP with MID {PING_MID} answered with the same MID ({status.describe(reply.status)})",
                    port=ipc.port,
                )
            ]
        return [self.unknown(f"reply carried MID {mid}, neither {PING_MID} nor {PING_MID + 16}", port=ipc.port)]
