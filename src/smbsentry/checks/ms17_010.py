"""MS17-010: PeekNamedPipe on FID 0 over IPC$ (checks.md).

0xC0000205 (STATUS_INSUFF_SERVER_RESOURCES) proves the unpatched code path;
INVALID_HANDLE or ACCESS_DENIED prove the patch.  Where the probe cannot run,
facts may still decide: SMBv1 proven off on every SMB port (every MS17-010 bug
lives in the SMBv1 server, so none can be reached), or a build that no
affected release shares.  Anything else (logons or IPC$ refused, a reset, an
unexpected answer) is unknown with the reason and what would settle it: a
host that could not be tested is never called safe, and a host the facts
decide is not left unknown to bury the real unknowns.
"""

from __future__ import annotations

from ..model import Finding
from ..protocol import smb1, status
from .base import Check, HostAccess, Need
from .inference import decided_without_probe

VULNERABLE = {status.INSUFF_SERVER_RESOURCES}
PATCHED = {status.INVALID_HANDLE, status.ACCESS_DENIED}
SETTLE = ("to settle it: scan again with an account that can open IPC$ (--user), "
          "or audit the host's installed updates (smbsentry audit)")
SMB1_OFF_REASON = ("every MS17-010 bug is in the SMBv1 server, which is off, so none can be reached over the network; "
                   "whether the update is installed is not visible remotely: audit the host to know")


#: The probe: TRANSACTION, setup (PeekNamedPipe 0x23, FID 0), name \\PIPE\\,
#: max parameter/data 0xFFFF, parameters and data at offset 0x4A, no data.
PEEK_NAMED_PIPE_FID_0 = (0x0023, 0x0000)


class Ms17010(Check):
    id = "ms17-010"
    needs = frozenset({Need.SMB, Need.SMB1_SESSION, Need.IPC})

    async def run(self, host: HostAccess) -> list[Finding]:
        ipc, why = await host.smb1_ipc()
        if ipc is None:
            return [decided_without_probe(self, host, ("ms17-010",), SMB1_OFF_REASON)
                    or self.unknown(f"probe could not run: {why}; {SETTLE}", port=_smb1_port(host))]
        reply = await ipc.transaction(smb1.TRANSACTION, PEEK_NAMED_PIPE_FID_0, name="\\PIPE\\")
        code = reply.status
        evidence = f"PeekNamedPipe on FID 0 over an {ipc.kind} IPC$ session answered {status.describe(code)}"
        if code in VULNERABLE:
            return [self.finding("vulnerable", evidence=evidence, port=ipc.port)]
        if code in PATCHED:
            return [self.finding("not_vulnerable", evidence=evidence, port=ipc.port)]
        return [self.finding("unknown", evidence=evidence, reason=f"unexpected answer {status.describe(code)}; {SETTLE}", port=ipc.port)]


def _smb1_port(host: HostAccess) -> int | None:
    ports = host.result.ports
    return next((int(p) for p, state in ports.items() if state == "open"), None)

