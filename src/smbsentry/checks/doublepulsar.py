"""DoublePulsar implant ping: TRANSACTION2 SESSION_SETUP with MID 65.

An implanted host answers with MID 81 (the request's MID plus 16) and
STATUS_NOT_IMPLEMENTED; its signature field then carries the XOR key
(bytes 0-3, through the implant's derivation) and the architecture
(bytes 4-7: zero means x86).  A clean host keeps the MID.  Only the ping is
sent, never the implant's uninstall ("burn") command.  Honeypots such as
dionaea also answer MID 81: the finding says what was seen, an implant answer.

Without a session on IPC$ the ping cannot be sent.  SMBv1 proven off then
decides (the implant's channel is the SMBv1 server: nothing can answer), and
so does a build that neither MS17-010 (the delivery) nor the implant's own
table reaches; otherwise the finding is unknown, saying what would settle it.
"""

from __future__ import annotations

from ..model import Finding
from ..protocol import smb1, status
from ..protocol.doublepulsar import architecture, xor_key
from .base import Check, HostAccess, Need
from .inference import decided_without_probe

PING_MID = 65
PING_TIMEOUT = 0x00A4D9A6  # the implant reads its command from the Timeout field: ping
SESSION_SETUP = 0x000E
SMB1_OFF_REASON = ("the implant answers through the SMBv1 server, which is off, so none can answer or be reached; "
                   "an implant planted before SMBv1 was turned off would still be in memory until a restart")
SETTLE = "to settle it: scan again with an account that can open IPC$ (--user)"


#: The ping's fields (smb1.transaction_request): a fixed MID, whose answer is the evidence.
PING = {"mid": PING_MID, "params": b"\x00" * 12, "max_param": 1, "max_data": 0, "timeout": PING_TIMEOUT}


class DoublePulsar(Check):
    id = "doublepulsar"
    needs = frozenset({Need.SMB, Need.SMB1_SESSION, Need.IPC})

    async def run(self, host: HostAccess) -> list[Finding]:
        ipc, why = await host.smb1_ipc()
        if ipc is None:
            return [decided_without_probe(self, host, ("ms17-010", "doublepulsar"), SMB1_OFF_REASON)
                    or self.unknown(f"ping needs an SMB1 session on IPC$: {why}; {SETTLE}")]
        reply = await ipc.transaction(smb1.TRANSACTION2, (SESSION_SETUP,), **PING)
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
        return [self.unknown(f"reply carried MID {mid}, neither {PING_MID} nor {PING_MID + 16}; {SETTLE}", port=ipc.port)]
