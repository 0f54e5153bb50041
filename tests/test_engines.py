"""Distributed scan engines: real Redis, real Celery worker processes, a real lab.

Only loopback lab ranges are scanned (127.55.x, 127.56.x); the out-of-range
job names 127.57.0.1 and is refused before anything is sent.
Without redis-server the broker tests skip locally and FAIL with CI=true.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import in_ci
from smbsentry.engines import signing
from smbsentry.engines.app import EngineConfig, TASK_NAME, make_app, ssl_options
from smbsentry.engines.routes import RouteError, Router, Sharding, parse_routes_text, shards
from smbsentry.discover.targets import Target, TargetSet

PORT = 44655
MIX = "win7-sp1-unpatched=1,win10-22h2=1,win2019=1,samba-4.17=1"


# ---------------------------------------------------------------- no broker needed
def test_signature_roundtrip_and_tamper():
    key = b"k" * 32
    job = signing.new_job(7, 3, ["127.55.0.1"], {"ports": [445]}, "reply")
    sig = signing.sign(key, job)
    assert signing.check_job(key, job, sig) is job
    # canonical: key order does not matter
    assert signing.sign(key, dict(reversed(list(job.items())))) == sig
    for bad in ({**job, "targets": ["127.55.0.2"]}, {**job, "scan_id": 8}, {**job, "nonce": "x"}):
        with pytest.raises(signing.SignatureError) as e:
            signing.check_job(key, bad, sig)
        assert e.value.reason == "bad-signature"
    with pytest.raises(signing.SignatureError) as e:
        signing.check_job(key, job, "")
    assert e.value.reason == "unsigned"
    with pytest.raises(signing.SignatureError) as e:
        signing.check_job(b"x" * 32, job, sig)
    assert e.value.reason == "bad-signature"
    # a key's public id tells keys apart without showing them
    assert signing.key_id(key) == signing.key_id(b"k" * 32) != signing.key_id(b"x" * 32)
    assert key.hex() not in signing.key_id(key) and len(signing.key_id(key)) == 16


def test_stale_and_local_nonces():
    from smbsentry.engines import shared

    key = b"k" * 32
    old = signing.new_job(1, 0, [], {}, "r", now=time.time() - 3600)
    with pytest.raises(signing.SignatureError) as e:
        signing.check_job(key, old, signing.sign(key, old), max_age=600)
    assert e.value.reason == "stale"
    future = signing.new_job(1, 0, [], {}, "r", now=time.time() + 3600)
    with pytest.raises(signing.SignatureError) as e:
        signing.check_job(key, future, signing.sign(key, future))
    assert e.value.reason == "stale"
    # the per-process store (brokers without a key-value store): claimed, busy, done, released
    local = shared.LocalNonces(ttl=60)
    assert local.claim("n1", "me") == shared.NEW
    assert local.claim("n1", "other") == shared.BUSY
    assert local.renew("n1", "me") and not local.renew("n1", "other")
    local.finish("n1", "me")
    assert local.claim("n1", "other") == shared.DONE
    assert local.claim("n2", "me") == shared.NEW
    local.release("n2", "other")
    assert local.claim("n2", "x") == shared.BUSY      # only its owner releases a claim
    local.release("n2", "me")
    assert local.claim("n2", "x") == shared.NEW


def test_key_file(tmp_path):
    path = tmp_path / "key"
    signing.generate_key(path)
    assert len(signing.load_key(path)) == 64 and oct(path.stat().st_mode & 0o777) == "0o600"
    (tmp_path / "short").write_text("abc")
    with pytest.raises(signing.SignatureError):
        signing.load_key(tmp_path / "short")


def test_routes_and_sharding():
    routes = parse_routes_text("""
# segments
seg1:
  - 127.55.0.0/16
  - "127.56.7.0/24"   # a pocket of seg2's range
seg2: [127.56.0.0/16]
""")
    assert routes == {"seg1": ["127.55.0.0/16", "127.56.7.0/24"], "seg2": ["127.56.0.0/16"]}
    assert parse_routes_text('{"a": ["10.0.0.0/8"]}') == {"a": ["10.0.0.0/8"]}
    r = Router(routes)
    assert r.queue_for("127.55.3.4") == "seg1" and r.queue_for("127.56.7.9") == "seg1"
    assert r.queue_for("127.56.8.9") == "seg2" and r.queue_for("127.57.0.1") is None
    assert Router(routes, default="other").queue_for("127.57.0.1") == "other"
    with pytest.raises(RouteError):
        Router({"seg1": ["not-a-cidr"]})
    with pytest.raises(RouteError):
        Router({})
    stats = Sharding()
    out = list(shards(TargetSet(["127.55.0.250-127.55.1.5", "127.56.7.1-3", "127.56.8.1-20", "127.57.0.1"]), r, 8, stats))
    assert [(s.queue, len(s.targets)) for s in out] == [("seg1", 6), ("seg1", 6), ("seg1", 3), ("seg2", 8), ("seg2", 8), ("seg2", 4)]
    assert [s.id for s in out] == list(range(6))
    assert stats.unrouted == ["127.57.0.1"] and stats.targets == 36
    # host names are resolved centrally and routed by address
    assert [s.targets for s in shards([Target(None, hostname="localhost")], Router(default="q"))] == [["127.0.0.1"]]


def test_broker_tls_options_pass_through(monkeypatch):
    import ssl

    monkeypatch.delenv("SMBSENTRY_BROKER_SSL", raising=False)
    assert ssl_options("redis://h") is None
    assert ssl_options("rediss://h") == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    got = ssl_options("rediss://:pw@h:6380/0", {"ssl_cert_reqs": "none", "ssl_ca_certs": "/ca.pem"})
    assert got == {"ssl_cert_reqs": ssl.CERT_NONE, "ssl_ca_certs": "/ca.pem"}
    monkeypatch.setenv("SMBSENTRY_BROKER_SSL", json.dumps({"ca_certs": "/ca.pem", "cert_reqs": "required"}))
    assert ssl_options("amqps://u:p@h//") == {"ca_certs": "/ca.pem", "cert_reqs": ssl.CERT_REQUIRED}
    app = make_app("rediss://:pw@h:6380/0", {"ssl_cert_reqs": "required", "ssl_certfile": "/c.pem"})
    assert app.conf.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_certfile": "/c.pem"}
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost and app.conf.accept_content == ["json"]


def test_engine_allowed_ranges(monkeypatch):
    monkeypatch.setenv("SMBSENTRY_ENGINE_ALLOW", "127.55.0.0/16, 127.56.1.0/24")
    cfg = EngineConfig()
    assert cfg.outside(["127.55.9.9", "127.56.1.1"]) == []
    assert cfg.outside(["127.56.2.1", "::1", "junk"]) == ["127.56.2.1", "::1", "junk"]


def test_engine_refuses_to_start_without_allow_or_key(tmp_path, capsys):
    from smbsentry.engines.cli import main_engine

    assert main_engine("q", allowed_ranges=[], key_file=None) == 2
    assert "--allow" in capsys.readouterr().err
    assert main_engine("q", allowed_ranges=["127.55.0.0/16"], key_file=str(tmp_path / "missing")) == 2


# ---------------------------------------------------------------- real Redis + workers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server on a loopback port, with a password and no persistence; a test may stop and
    start it again (a restart then loses every queued job and reply, as a crash of a cache-only broker does).
    Without redis-server: skip, or fail with CI=true."""

    def __init__(self, d: Path, password: str = "engines-test-pw") -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            msg = "redis-server is not installed (apt-get install redis-server; scripts/install-system-deps)"
            if in_ci():
                pytest.fail(f"{msg}; CI=true so this is an error, not a skip", pytrace=False)
            pytest.skip(msg)
        self.exe, self.dir, self.port, self.password = exe, d, _free_port(), password
        self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                                      "--save", "", "--appendonly", "no", "--requirepass", self.password],
                                     stdout=open(self.dir / "redis.log", "a"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "engines.key"
    signing.generate_key(path)
    return str(path)


class Workers:
    def __init__(self, url: str, key: str, logdir: Path) -> None:
        self.url, self.key, self.logdir = url, key, logdir
        self.procs: list[subprocess.Popen] = []

    def start(self, queue: str, allow: list[str], name: str, extra_env: dict | None = None,
              extra_args: list[str] = ()) -> subprocess.Popen:
        env = {**os.environ, "SMBSENTRY_BROKER": self.url, **(extra_env or {})}
        args = [sys.executable, "-m", "smbsentry.engines", "engine", "--queue", queue, "--key-file", self.key,
                "--name", name, "--concurrency", "64", *extra_args]
        for a in allow:
            args += ["--allow", a]
        log = open(self.logdir / f"{name.split('@')[0]}.log", "ab")
        p = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        p.name = name  # type: ignore[attr-defined]
        self.procs.append(p)
        app = make_app(self.url)
        deadline = time.time() + 30
        while time.time() < deadline:
            if p.poll() is not None:
                raise AssertionError(f"engine {name} exited: {self.log(name)[-2000:]}")
            if app.control.ping(destination=[name], timeout=0.5):
                return p
        raise AssertionError(f"engine {name} did not answer a ping: {self.log(name)[-2000:]}")

    def log(self, name: str) -> str:
        return (self.logdir / f"{name.split('@')[0]}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def workers(redis_url, key_file, tmp_path):
    w = Workers(redis_url, key_file, tmp_path)
    yield w
    w.stop_all()


def _by_address(store, scan_id) -> dict:
    return {h["address"]: sorted((f["id"], f["status"]) for f in h.get("findings") or [])
            for h in store.hosts(scan_id, limit=None)}


def test_two_engines_match_local_scan(workers, redis_url, key_file, tmp_path, capsys):
    from smbsentry.checks.registry import select
    from smbsentry.engines.cli import engines_info, main_distributed_scan, main_engines_list
    from smbsentry.lab.background import BackgroundLab
    from smbsentry.scan.engine import Engine
    from smbsentry.scan.fingerprint import ScanOptions
    from smbsentry.store import Store

    workers.start("seg1", ["127.55.0.0/16"], "seg1-a@test")
    workers.start("seg2", ["127.56.0.0/16"], "seg2-a@test")
    live = {r["name"]: r for r in engines_info(redis_url)}
    assert live["seg1-a@test"]["queues"] == ["seg1"] and live["seg2-a@test"]["queues"] == ["seg2"]
    assert live["seg1-a@test"]["allowed"] == ["127.55.0.0/16"]
    assert main_engines_list(redis_url) == 0
    assert "seg2-a@test" in capsys.readouterr().out

    routes = tmp_path / "routes.yaml"
    routes.write_text("seg1:\n  - 127.55.0.0/16\nseg2:\n  - 127.56.0.0/16\n")
    db = f"sqlite:///{tmp_path / 'central.db'}"
    with BackgroundLab("127.55.0.1-30", ports=[PORT], mix=MIX, bind_mode="per-address"), \
         BackgroundLab("127.56.0.1-30", ports=[PORT], mix=MIX, bind_mode="per-address"):
        rc = main_distributed_scan(["127.55.0.1-30", "127.56.0.1-30"], None, str(routes), redis_url, db, 16,
                                   key_file=key_file, ports=str(PORT), timeout=3.0, quiet=True)
        assert rc == 0
        local = Store.open(f"sqlite:///{tmp_path / 'local.db'}")
        lid = local.begin_scan(["local"])
        options = ScanOptions(ports=(PORT,), timeout=3.0, checks=tuple(select("default")))
        engine = Engine(options, concurrency=64, on_result=lambda r: local.add_host(lid, r))
        asyncio.run(engine.run(TargetSet(["127.55.0.1-30", "127.56.0.1-30"])))
        local.finish_scan(lid)
    central = Store.open(db)
    sid = central.latest_scan()
    meta = central.scan(sid)
    assert meta["status"] == "finished" and meta["hosts"] == 60
    got, want = _by_address(central, sid), _by_address(local, lid)
    assert set(got) == set(want) and len(got) == 60
    assert got == want
    assert any(s != "not_vulnerable" for v in got.values() for _, s in v)
    for h in central.hosts(sid, limit=None):
        q = "seg1" if h["address"].startswith("127.55.") else "seg2"
        assert h["engine"]["queue"] == q and h["engine"]["name"] == f"{q}-a@test" and h["engine"]["hostname"]


def test_killed_engine_mid_shard_still_completes(workers, redis_url, key_file, tmp_path):
    """SIGKILL the seg1 engine while it scans a slow (rate-limited) shard; Celery delivers the
    unacknowledged shard again (acks_late, short visibility timeout) to a replacement engine."""
    from smbsentry.engines.central import DistributedScan
    from smbsentry.lab.background import BackgroundLab
    from smbsentry.store import Store

    env = {"SMBSENTRY_VISIBILITY_TIMEOUT": "4"}
    victim = workers.start("seg1", ["127.55.0.0/16"], "seg1-victim@test", env)
    workers.start("seg2", ["127.56.0.0/16"], "seg2-b@test", env)
    app = make_app(redis_url)
    store = Store.open(f"sqlite:///{tmp_path / 'central.db'}")
    sid = store.begin_scan(["127.55.1.1-12", "127.56.1.1-12"])
    state = {"killed": False, "replacement": None}

    def on_message(msg: dict) -> None:
        if (not state["killed"] and msg["type"] == "host" and msg["engine"]["name"] == "seg1-victim@test"):
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            state["killed"] = True
            state["replacement"] = workers.start("seg1", ["127.55.0.0/16"], "seg1-replacement@test", env)

    router = Router({"seg1": ["127.55.0.0/16"], "seg2": ["127.56.0.0/16"]})
    options = {"ports": [PORT], "timeout": 3.0, "checks": "default", "dialects": "range", "rate": 8}
    with BackgroundLab("127.55.1.1-12", ports=[PORT], mix=MIX, bind_mode="per-address"), \
         BackgroundLab("127.56.1.1-12", ports=[PORT], mix=MIX, bind_mode="per-address"):
        scan = DistributedScan(app, signing.load_key(key_file), router, options, store=store, scan_id=sid,
                               shard_size=12, stall_timeout=0, timeout=120, on_message=on_message)
        summary = scan.run(TargetSet(["127.55.1.1-12", "127.56.1.1-12"]))
    store.finish_scan(sid)
    assert state["killed"], "the victim never reported a host"
    assert summary.complete, summary.to_dict()
    assert summary.resent == 0  # Celery's redelivery did it, not the central re-send
    hosts = store.hosts(sid, limit=None)
    addresses = [h["address"] for h in hosts]
    assert len(addresses) == len(set(addresses)) == 24
    assert store.scan(sid)["hosts"] == 24
    seg1 = {h["engine"]["name"] for h in hosts if h["address"].startswith("127.55.")}
    assert "seg1-replacement@test" in seg1
    assert "scan %d shard 0" % sid in workers.log("seg1-replacement@test")
    # the victim's claim on the job's nonce lapsed with its heartbeat: the redelivered job is taken over, not a replay
    assert "its earlier engine stopped mid-shard; running it here" in workers.log("seg1-replacement@test")


def test_central_resends_a_stalled_shard(workers, redis_url, key_file, tmp_path):
    """Without waiting for the broker's visibility timeout: the central side notices the silent
    engine (no heartbeat) and signs the shard again for the second engine on that queue."""
    from smbsentry.engines.central import DistributedScan
    from smbsentry.lab.background import BackgroundLab

    env = {"SMBSENTRY_VISIBILITY_TIMEOUT": "3600"}
    first = workers.start("seg1", ["127.55.0.0/16"], "seg1-first@test", env)
    workers.start("seg1", ["127.55.0.0/16"], "seg1-second@test", env)
    killed = []

    def on_message(msg: dict) -> None:
        if not killed and msg["type"] == "host" and msg["engine"]["name"] == "seg1-first@test":
            os.kill(first.pid, signal.SIGKILL)
            killed.append(True)

    options = {"ports": [PORT], "timeout": 3.0, "checks": "default", "dialects": "range", "rate": 8}
    with BackgroundLab("127.55.2.1-10", ports=[PORT], mix=MIX, bind_mode="per-address"):
        scan = DistributedScan(make_app(redis_url), signing.load_key(key_file), Router(default="seg1"), options,
                               scan_id=99, shard_size=5, stall_timeout=5, timeout=120, on_message=on_message)
        summary = scan.run(TargetSet(["127.55.2.1-10"]))
    if not killed:
        pytest.skip("the second engine took both shards")
    assert summary.complete and summary.resent >= 1 and summary.with_smb == 10, summary.to_dict()


def test_bad_jobs_are_refused_and_logged(workers, redis_url, key_file, tmp_path):
    workers.start("segr", ["127.55.0.0/16"], "segr@test", extra_args=["--max-age", "60"])
    app = make_app(redis_url)
    key = signing.load_key(key_file)
    reply = "smbsentry.results.test-refusals"
    opts = {"ports": [PORT], "timeout": 1.0, "checks": "none", "dialects": "range", "rate": 0}

    def job(targets, **kw):
        return {**signing.new_job(5, len(targets), targets, opts, reply), **kw}

    unsigned = job(["127.55.0.1"])
    app.send_task(TASK_NAME, args=[unsigned, ""], queue="segr")
    forged = job(["127.55.0.1"])
    app.send_task(TASK_NAME, args=[forged, signing.sign(b"not-the-key-" * 3, forged)], queue="segr")
    tampered = job(["127.55.0.1"])
    sig = signing.sign(key, tampered)
    app.send_task(TASK_NAME, args=[{**tampered, "targets": ["127.55.0.2"]}, sig], queue="segr")
    stale = job(["127.55.0.1"], issued_at=time.time() - 3600)
    app.send_task(TASK_NAME, args=[stale, signing.sign(key, stale)], queue="segr")
    outside = job(["127.55.0.1", "127.57.0.1"])
    app.send_task(TASK_NAME, args=[outside, signing.sign(key, outside)], queue="segr")
    good = job(["127.55.0.9"], shard=77)
    app.send_task(TASK_NAME, args=[good, signing.sign(key, good)], queue="segr")
    app.send_task(TASK_NAME, args=[good, signing.sign(key, good)], queue="segr")  # replayed

    got: list[dict] = []
    unsigned: list[dict] = []
    with app.connection_for_write() as conn:
        q = conn.SimpleQueue(reply)
        deadline = time.time() + 30
        while time.time() < deadline and not (any(m["type"] == "done" for m in got)
                                               and sum(m["type"] == "refused" for m in got) >= 3 and len(unsigned) >= 3):
            try:
                m = q.get(timeout=0.5)
            except q.Empty:
                continue
            m.ack()
            if not m.payload["sig"]:
                unsigned.append(m.payload["msg"])   # the jobs the engine could not authenticate: said unsigned
                continue
            signing.verify(key, m.payload["msg"], m.payload["sig"])
            got.append(m.payload["msg"])
        q.close()
    refused = sorted(m["reason"] for m in got if m["type"] == "refused")
    assert refused == ["out-of-range", "replay", "stale"]
    assert [m["shard"] for m in got if m["type"] == "done"] == [77]
    assert sorted(m["reason"] for m in unsigned) == ["bad-signature", "bad-signature", "unsigned"]
    assert all(m["type"] == "refused" and m["engine"]["name"] == "segr@test" for m in unsigned)
    assert "key differs" in next(m["detail"] for m in unsigned if m["reason"] == "bad-signature")
    log = workers.log("segr@test")
    for reason in ("unsigned", "bad-signature", "stale", "out-of-range", "replay"):
        assert f"refused job (scan 5, shard" in log and f": {reason}:" in log, reason
    assert log.count(": bad-signature:") == 2
    assert "127.57.0.1" in log  # the refused address is named


def test_scan_engines_through_the_cli(workers, redis_url, key_file, tmp_path):
    """`smbsentry scan --engines --queue` as a user runs it: results land in the store with the engine's name."""
    from smbsentry.lab.background import BackgroundLab
    from smbsentry.store import Store

    workers.start("cli-seg", ["127.55.0.0/16"], "cli-a@test")
    db = tmp_path / "cli.db"
    with BackgroundLab("127.55.1.1-12", ports=[PORT], mix=MIX, bind_mode="per-address"):
        p = subprocess.run(
            [sys.executable, "-m", "smbsentry.cli", "scan", "127.55.1.1-12", "--engines", "--queue", "cli-seg",
             "--broker", redis_url, "--key-file", key_file, "--ports", str(PORT), "--timeout", "3",
             "--db", str(db), "--format", "jsonl", "-q"],
            capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    written = {json.loads(x)["address"] for x in p.stdout.splitlines()}
    assert written == {f"127.55.1.{i}" for i in range(1, 13)}  # jsonl on stdout, as for a local scan
    with Store.open(str(db)) as store:
        (scan,) = store.scans()
        hosts = store.hosts(scan["id"], limit=None)
    assert {h["address"] for h in hosts} == {f"127.55.1.{i}" for i in range(1, 13)}
    assert all(h["engine"]["name"] == "cli-a@test" and h["engine"]["queue"] == "cli-seg" for h in hosts)


def test_engine_job_options_split_service_ports_like_the_cli():
    from smbsentry.engines.app import _scan_options
    from smbsentry.services import DEFAULT_PORTS, QUIC_PORTS

    o = _scan_options({"ports": [445, 139, 3389], "checks": "default"})
    assert o.ports == (445, 139) and o.service_ports == frozenset({3389})
    o = _scan_options({"ports": [445], "checks": "all"})  # all: the Shadow Brokers services and SMB over QUIC's UDP 443
    assert o.ports == (445,) and o.service_ports == DEFAULT_PORTS | frozenset(QUIC_PORTS)
