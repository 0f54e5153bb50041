"""Run a lab in a background thread, for tests, benchmarks and notebooks.

    with BackgroundLab("127.50.0.1-18", ports=[44555], bind_mode="per-address") as lab:
        ...  # scan lab.range; lab.manifest_path is written when asked for

The lab gets its own event loop in a daemon thread, so synchronous code (an
nmap subprocess, pytest functions calling asyncio.run) can talk to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

from .profile_model import ROLES
from .server import Lab


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class BackgroundLab:
    def __init__(self, range: str, ports: Iterable = ROLES, mix=None, bind_mode: str = "auto",  # noqa: A002
                 manifest_path=None, idle_timeout: float = 30.0, nbns: bool | None = None,
                 quic: int | bool | None = None) -> None:
        self.lab = Lab(range, ports, mix, bind_mode, idle_timeout=idle_timeout, nbns=nbns, quic=quic)
        self.manifest_path = manifest_path
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smbsentry-lab", daemon=True)

    @property
    def range(self):
        return self.lab.range

    def start(self) -> "BackgroundLab":
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.lab.start(), self._loop).result(60)
        except BaseException:
            self._shutdown()
            raise
        if self.manifest_path is not None:
            self.lab.write_manifest(self.manifest_path)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self.lab.stop(), self._loop).result(30)
            finally:
                self._shutdown()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> "BackgroundLab":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
