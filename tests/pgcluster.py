"""A throw-away PostgreSQL cluster (Debian's binaries) on a free loopback port.

Started by the tests that need a real server, and stopped and started again
by those that need it to go away (tests/test_store_faults.py).  It skips
(or fails, with CI=true) when no postgres binaries exist.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], capture_output=True, timeout=600)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def free_port(preferred: int = 0) -> int:
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


class PgCluster:
    """initdb in a temporary directory; start(), stop(), url(database), create(database)."""

    def __init__(self, preferred_port: int = 0) -> None:
        bindir = pg_bin()
        if bindir is None:
            unavailable("no /usr/lib/postgresql/*/bin/initdb")
        self.bindir = bindir
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                unavailable("running as root without runuser")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.tmp = tempfile.mkdtemp(prefix="smbsentry-pg-")
        self.data = os.path.join(self.tmp, "data")
        if self.run_as:
            shutil.chown(self.tmp, "postgres", "postgres")
        self.port = free_port(preferred_port)
        try:
            self._pg("initdb", "-D", self.data, "-U", "smbsentry", "--auth=trust", "-E", "UTF8")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            self.remove()
            unavailable(f"initdb: {exc}: {getattr(exc, 'stderr', b'')!r}")

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(self.run_as + [f"{self.bindir}/{tool}", *args], check=True, capture_output=True, timeout=120)

    def start(self) -> "PgCluster":
        try:
            self._pg("pg_ctl", "-D", self.data, "-l", os.path.join(self.tmp, "log"), "-w", "-t", "60", "start",
                     "-o", f"-h 127.0.0.1 -p {self.port} -k {self.tmp} -F")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            log = open(os.path.join(self.tmp, "log")).read()[-2000:] if os.path.exists(os.path.join(self.tmp, "log")) else ""
            unavailable(f"{exc}: {getattr(exc, 'stderr', b'')!r} {log}")
        return self

    def stop(self) -> None:
        """Fast shutdown: open connections are ended, as when a server goes away."""
        subprocess.run(self.run_as + [f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://smbsentry@127.0.0.1:{self.port}/{database}"

    def create(self, database: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(f"postgresql+psycopg://smbsentry@127.0.0.1:{self.port}/postgres", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {database}"))
        finally:
            admin.dispose()
        return self.url(database)

    def remove(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
