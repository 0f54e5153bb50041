"""MS17-010: PeekNamedPipe on FID 0 over IPC$ (checks.md).

0xC0000205 (STATUS_INSUFF_SERVER_RESOURCES) proves the unpatched code path;
INVALID_HANDLE or ACCESS_DENIED prove the patch.  Anything else, or a probe
that could not run (SMBv1 off, logons or IPC$ refused, a reset), is unknown
with the reason: a host that could not be tested is never called safe.
"""

from __future__ import annotations

from ..model import Finding
from ..protocol import smb1, status
from .base import Check, HostAccess
from .registry import register

VULNERABLE = {status.INSUFF_SERVER_RESOURCES}
PATCHED = {status.INVALID_HANDLE, status.ACCESS_DENIED}


def peek_named_pipe(mid: int, uid: int, tid: int) -> bytes:
    """The probe: TRANSACTION, setup (PeekNamedPipe 0x23, FID 0), name \\PIPE\\,
    max parameter/data 0xFFFF, parameters and data at offset 0x4A, no data."""
    return smb1.transaction_request(smb1.TRANSACTION, mid=mid, uid=uid, tid=tid, setup=(0x0023, 0x0000), name="\\PIPE\\")


@register
class Ms17010(Check):
    id = "ms17-010"
    needs = frozenset({"smb1", "ipc"})

    async def run(self, host: HostAccess) -> list[Finding]:
        ipc, why = await host.smb1_ipc()
        if ipc is None:
            return [self.unknown(f"probe could not run: {why}", port=_smb1_port(host))]
        reply = smb1.parse_transaction_response(await ipc.request(peek_named_pipe(ipc.next_mid(), ipc.uid, ipc.tid)))
        code = reply.status
        evidence = f"PeekNamedPipe on FID 0 over an {ipc.kind} IPC$ session answered {status.describe(code)}"
        if code in VULNERABLE:
            return [self.finding("vulnerable", evidence=evidence, port=ipc.port)]
        if code in PATCHED:
            return [self.finding("not_vulnerable", evidence=evidence, port=ipc.port)]
        return [self.finding("unknown", evidence=evidence, reason=f"unexpected answer {status.describe(code)}", port=ipc.port)]


def _smb1_port(host: HostAccess) -> int | None:
    ports = host.result.ports
    return next((int(p) for p, state in ports.items() if state == "open"), None)
