"""Real faults for the tests of issue 17: misbehaving servers on loopback in a
background event loop, a TCP proxy that answers late, the sockets a process
still holds, a tmpfs that fills up.

Every address is in 127.171.0.0/16 (nothing else in the suite uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

NET = "127.171"


def client_sockets(address: str, port: int, pid: int | None = None) -> int:
    """TCP sockets of process `pid` (default: this one) connected to address:port.

    Read from /proc: the socket inodes the process has open, matched against
    /proc/net/tcp rows whose remote end is address:port."""
    fd_dir = f"/proc/{pid or os.getpid()}/fd"
    inodes = set()
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            link = os.readlink(os.path.join(fd_dir, fd))
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(address), "little"), port)
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[2] == want and cols[9] in inodes:
                n += 1
    return n


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class BackgroundServers:
    """asyncio servers in a thread of their own, so a subprocess (or asyncio.run
    in the test) can talk to them.  `serve(addresses, port, handler)`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[asyncio.AbstractServer] = []
        self.writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> "BackgroundServers":
        self.thread.start()
        return self

    def serve(self, addresses: list[str], port: int, handler: Handler) -> None:
        async def start():
            async def tracked(reader, writer):
                self.writers.add(writer)
                try:
                    await handler(reader, writer)
                except (OSError, asyncio.IncompleteReadError):
                    pass
                finally:
                    self.writers.discard(writer)
                    writer.close()

            for a in addresses:
                self.servers.append(await asyncio.start_server(tracked, a, port, reuse_address=True, backlog=1024))

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)

    def __exit__(self, *exc) -> None:
        async def stop():
            for s in self.servers:
                s.close()
            for w in list(self.writers):
                w.transport.abort()
            for s in self.servers:
                await s.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def tarpit(reader, writer) -> None:
    """Accept, read whatever comes, never answer."""
    while await reader.read(65536):
        pass


def late_proxy(upstream: tuple[str, int], delay: float) -> Handler:
    """Forward to `upstream`; every chunk the server sends reaches the client `delay` seconds late."""

    async def handler(reader, writer):
        up_r, up_w = await asyncio.open_connection(*upstream)

        async def pump(src, dst, wait):
            try:
                while data := await src.read(65536):
                    if wait:
                        await asyncio.sleep(wait)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pump(reader, up_w, 0), pump(up_r, writer, delay))
        finally:
            up_w.close()

    return handler


class Tmpfs:
    """A small tmpfs mounted on a temporary directory (root only), to fill up."""

    def __init__(self, size: str = "1m") -> None:
        self.size = size
        self.path = Path(tempfile.mkdtemp(prefix="smbsentry-tmpfs-"))

    def __enter__(self) -> "Tmpfs":
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(self.path)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            shutil.rmtree(self.path, ignore_errors=True)
            pytest.skip(f"cannot mount a tmpfs: {p.stderr.strip()}")
        return self

    def fill(self, leave: int = 0) -> Path:
        """Write a filler file until only about `leave` bytes are free; returns it."""
        st = os.statvfs(self.path)
        free = st.f_bavail * st.f_frsize
        filler = self.path / "filler"
        with open(filler, "ab") as f:
            want = max(0, free - leave)
            chunk = b"\0" * 65536
            try:
                while want > 0:
                    f.write(chunk[:min(want, len(chunk))])
                    want -= min(want, len(chunk))
                f.flush()
            except OSError:
                pass
        return filler

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)


_LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_with_peak_rss(cmd: list[str], timeout: float = 600, **kw) -> tuple[int, int]:
    """(exit status, peak RSS in KB) of `cmd`, started from a small launcher
    process: a child forked straight from pytest would count pytest's own
    memory in its ru_maxrss (it is kept across exec)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        subprocess.run([sys.executable, "-c", _LAUNCH, report.name, *cmd], timeout=timeout, check=True, **kw)
        status, rss = report.read().split()
    return int(status), int(rss)
