"""Live capture: a capture tool writes pcap to a pipe, the reader streams it.

The capture process is Wireshark's ``dumpcap`` (``dumpcap -i IF -f BPF -w -
-P -q``: plain pcap on stdout, flushed per packet when writing to a pipe) or,
when dumpcap is not installed, ``tcpdump -i IF -w - -U -n BPF``.  They
compile the BPF filter, open the interface (root, or CAP_NET_RAW +
CAP_NET_ADMIN) and keep the kernel side efficient; smbsentry reads their
output with the same streaming :class:`~smbsentry.detect.capture.CaptureReader`
as for files, so memory does not grow with the length of the capture.

Failures become :class:`LiveCaptureError` with a one-line reason: no
privilege, no such interface, a BPF expression the tool rejects, no capture
tool installed.  ``kind`` says which (``"privilege"``, ``"interface"``,
``"filter"``, ``"tool"``, ``"other"``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from typing import IO

from .capture import CaptureError, CaptureReader

__all__ = ["LiveCapture", "LiveCaptureError", "capture_command"]

_SBIN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SNAPLEN = 262144


class LiveCaptureError(Exception):
    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def capture_command(interface: str, bpf: str | None, tool: str | None = None) -> list[str]:
    """The command line of the capture process (dumpcap preferred, else tcpdump)."""
    names = (tool,) if tool else ("dumpcap", "tcpdump")
    for name in names:
        path = _which(name)
        if path is None:
            continue
        if os.path.basename(name) == "tcpdump":
            cmd = [path, "-i", interface, "-w", "-", "-U", "-n", "-s", str(SNAPLEN)]
            return cmd + ([bpf] if bpf else [])
        cmd = [path, "-i", interface, "-w", "-", "-P", "-q", "-s", str(SNAPLEN)]
        return cmd + (["-f", bpf] if bpf else [])
    raise LiveCaptureError(
        "live capture needs dumpcap (Debian package wireshark-common or tshark) or tcpdump", "tool"
    )


def _classify(stderr: str, interface: str, bpf: str | None) -> LiveCaptureError:
    lines = [x.strip() for x in stderr.splitlines() if x.strip() and not x.startswith("Capturing on")]
    low = " ".join(lines).lower()
    # the tool's own first line, and its reason in parentheses when it follows
    picked = lines[:1] + [x for x in lines[1:2] if x.startswith("(") or "valid capture filter" in x]
    detail = " ".join(picked)[:300] or "no message"
    if "permission" in low or "operation not permitted" in low or "not permitted" in low:
        return LiveCaptureError(
            f"capturing on {interface} needs root (or CAP_NET_RAW and CAP_NET_ADMIN): {detail}",
            "privilege",
        )
    if "no such device" in low or "doesn't exist" in low or "no such interface" in low or (
        "there is no" in low and "interface" in low
    ):
        return LiveCaptureError(f"no capture interface {interface!r}: {detail}", "interface")
    if bpf and ("filter" in low or "syntax" in low or "parse error" in low):
        return LiveCaptureError(f"bad capture filter {bpf!r}: {detail}", "filter")
    return LiveCaptureError(f"capture on {interface} failed: {detail}", "other")


class LiveCapture:
    """Context manager running the capture process; ``reader`` streams its records.

    ``duration``: stop the capture after this many seconds (None: until
    :meth:`stop`, Ctrl-C or the tool exits).
    """

    def __init__(
        self,
        interface: str,
        bpf: str | None = None,
        duration: float | None = None,
        tool: str | None = None,
        chunk_size: int = 65536,
    ) -> None:
        self.interface = interface
        self.bpf = bpf
        self.duration = duration
        self.cmd = capture_command(interface, bpf, tool)
        self.chunk_size = chunk_size
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: CaptureReader | None = None
        self._stderr: list[str] = []
        self._timer: threading.Timer | None = None
        self.stopped = False

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())

    @property
    def stderr_text(self) -> str:
        return "\n".join(self._stderr)

    def start(self) -> CaptureReader:
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,
            )
        except PermissionError as exc:
            raise LiveCaptureError(
                f"capturing on {self.interface} needs root (or the capture tool's group): "
                f"cannot run {self.cmd[0]}: {exc.strerror}",
                "privilege",
            ) from None
        except OSError as exc:
            raise LiveCaptureError(f"cannot start {self.cmd[0]}: {exc.strerror}", "tool") from None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        t = threading.Thread(target=self._drain_stderr, args=(self.proc.stderr,), daemon=True)
        t.start()
        try:
            self.reader = CaptureReader(self.proc.stdout, self.chunk_size)  # waits for the file header
        except CaptureError:
            self.proc.wait(timeout=10)
            t.join(timeout=2)
            raise _classify(self.stderr_text, self.interface, self.bpf) from None
        if self.duration is not None:
            self._timer = threading.Timer(self.duration, self.stop)
            self._timer.daemon = True
            self._timer.start()
        return self.reader

    def stop(self) -> None:
        """Ask the capture tool to finish (its output then ends)."""
        self.stopped = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        proc = self.proc
        if proc is None:
            return
        self.stop()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def failure(self) -> LiveCaptureError | None:
        """Why the tool ended on its own (None if it was stopped or is running)."""
        proc = self.proc
        if proc is None or self.stopped or proc.poll() is None or proc.returncode == 0:
            return None
        return _classify(self.stderr_text, self.interface, self.bpf)

    def __enter__(self) -> CaptureReader:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
