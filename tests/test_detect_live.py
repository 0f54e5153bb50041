"""Live capture on the loopback interface (root and dumpcap needed; skipped otherwise).

Traffic stays on lo: a throw-away SMB1 "server" on a private 127.x address
answers a DoublePulsar-style ping with the implant's MID + 16, and the
detector, capturing with a BPF filter for that address, must see it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from smbsentry.detect import live as live_mod
from smbsentry.detect.cli import main_detect
from smbsentry.detect.engine import Engine
from smbsentry.detect.live import LiveCapture

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_traces", REPO / "scripts" / "make_traces.py")
mt = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(mt)

DUMPCAP = shutil.which("dumpcap") or shutil.which("dumpcap", path="/usr/sbin:/usr/bin")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or DUMPCAP is None, reason="live capture needs root and dumpcap (tshark)"
)


def _recv_msg(conn: socket.socket) -> bytes | None:
    hdr = b""
    while len(hdr) < 4:
        chunk = conn.recv(4 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    n = struct.unpack(">I", hdr)[0] & 0xFFFFFF
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


class ImplantServer:
    """Answers NEGOTIATE, and every Trans2 with the request's MID + 16 (what an implant does)."""

    def __init__(self) -> None:
        self.address = f"127.61.{os.getpid() % 250 + 1}.{random.randrange(1, 250)}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((self.address, 445))
        except OSError as exc:
            self.sock.close()
            pytest.skip(f"cannot listen on {self.address}:445: {exc}")
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            while (msg := _recv_msg(conn)) is not None:
                cmd, mid = msg[4], struct.unpack_from("<H", msg, 30)[0]
                if cmd == 0x72:
                    reply = mt.negotiate_reply(mid=mid)
                else:
                    reply = mt.smb1(cmd, mid=mid + 16, reply=True, status=0xC0000002, signature=b"\x11" * 8)
                conn.sendall(mt.nbss(reply))

    def close(self) -> None:
        self.sock.close()


def _client(address: str) -> None:
    with socket.create_connection((address, 445), timeout=10) as c:
        for msg in (mt.negotiate_request(), mt.transaction(0x32, (0x000E,), b"\0" * 12, timeout=0x00A4D9A6, mid=65)):
            c.sendall(mt.nbss(msg))
            _recv_msg(c)


def _wait_capturing(cap: LiveCapture, seconds: float = 15.0) -> None:
    t0 = time.monotonic()
    while "Capturing on" not in cap.stderr_text and time.monotonic() - t0 < seconds:
        time.sleep(0.05)
    time.sleep(0.3)


def test_live_capture_sees_implant_exchange_on_loopback():
    server = ImplantServer()
    events: list[dict] = []
    engine = Engine(events.append)
    try:
        with LiveCapture("lo", f"host {server.address} and tcp port 445", duration=8) as reader:
            cap = live_mod_current(reader)
            t = threading.Thread(
                target=lambda: (_wait_capturing(cap), _client(server.address), time.sleep(0.7), cap.stop())
            )
            t.start()
            engine.run(reader, "lo", key="in_iface")
            t.join(timeout=30)
    finally:
        server.close()
    engine.end_source()
    engine.finish()
    got = [(e["alert"]["signature_id"], e["src_ip"], e["src_port"], e["dest_ip"], e["dest_port"])
           for e in events if e["event_type"] == "alert"]  # fmt: skip
    assert [g[0] for g in got] == ["doublepulsar-ping", "doublepulsar-reply"]
    assert got[0][3:] == (server.address, 445)
    assert got[1][1:3] == (server.address, 445)
    assert all(e.get("in_iface") == "lo" for e in events if e["event_type"] == "alert")


_CAPTURES: list[LiveCapture] = []


def live_mod_current(reader) -> LiveCapture:
    """The LiveCapture whose reader this is (kept by the patched start below)."""
    for cap in _CAPTURES:
        if cap.reader is reader:
            return cap
    raise AssertionError("capture not found")


@pytest.fixture(autouse=True)
def _track_captures(monkeypatch):
    orig = LiveCapture.start

    def start(self):
        _CAPTURES.append(self)
        return orig(self)

    monkeypatch.setattr(LiveCapture, "start", start)
    yield
    _CAPTURES.clear()


def test_main_detect_live_with_duration_writes_stats():
    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    rc = main_detect(interface="lo", bpf="tcp port 9 and host 127.61.255.254", duration=1.5, stdout=out, stderr=err,
                     quiet=True)  # fmt: skip
    assert rc == 0, err.getvalue()
    assert time.monotonic() - t0 < 30
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert lines[-1]["event_type"] == "stats"
    assert lines[-1]["stats"]["inputs"] == ["lo"]


def test_live_errors_are_one_line(monkeypatch):
    for kwargs, code, needle in (
        ({"interface": "nosuch0"}, 1, "no capture interface"),
        ({"interface": "lo", "bpf": "tcp port nosuchport"}, 2, "bad capture filter"),
    ):
        out, err = io.StringIO(), io.StringIO()
        rc = main_detect(duration=1, stdout=out, stderr=err, **kwargs)
        assert rc == code
        assert needle in err.getvalue() and err.getvalue().count("\n") == 1
        assert out.getvalue() == ""


def test_missing_privilege_is_one_line(monkeypatch):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv not installed")
    orig = live_mod.capture_command

    def unprivileged(interface, bpf, tool=None):
        cmd = orig(interface, bpf, tool)
        return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", *cmd]  # fmt: skip

    monkeypatch.setattr(live_mod, "capture_command", unprivileged)
    out, err = io.StringIO(), io.StringIO()
    rc = main_detect(interface="lo", duration=1, stdout=out, stderr=err)
    assert rc == 1
    text = err.getvalue()
    assert text.count("\n") == 1 and "needs root" in text and "permission" in text.lower()
