"""Engines under faults (issue 17): replays across engines and restarts, a broker that goes away and
comes back (a real redis-server stopped and started by the test), no engine or a wrong key on the
queue, refusals that must reach the central side, an engine that dies with nobody to take over.

Real Redis, real engine processes (Celery workers), a real lab on 127.61.x (per-address binding,
a high port), the central side as `smbsentry scan --engines` in a subprocess where a user would
run it.  Without redis-server these skip locally and FAIL with CI=true.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smbsentry.engines import shared, signing
from smbsentry.engines.app import TASK_NAME, make_app
from faultkit import stored_hosts
from test_engines import MIX, RedisServer, Workers, key_file  # noqa: F401 - key_file is a fixture

PORT = 44659
NET = "127.61.0.0/16"


@pytest.fixture
def redis(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    server = RedisServer(d, "faults-pw").start()
    yield server
    server.stop()


@pytest.fixture
def workers(redis, key_file, tmp_path):
    w = Workers(redis.url, key_file, tmp_path)
    yield w
    w.stop_all()


def _lab(spec: str):
    from smbsentry.lab.background import BackgroundLab

    return BackgroundLab(spec, ports=[PORT], mix=MIX, bind_mode="per-address")


def _scan(url: str, key_file: str, db: Path, *args: str, timeout: float = 180, wait: bool = True):
    cmd = [sys.executable, "-m", "smbsentry.cli", "scan", *args, "--engines", "--broker", url, "--key-file", key_file,
           "--ports", str(PORT), "--timeout", "3", "--db", str(db)]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _stored(db: Path) -> tuple[str | None, list[str]]:
    from smbsentry.store import Store

    with Store.open(str(db)) as store:
        sid = store.latest_scan()
        if sid is None:
            return None, []
        return store.scan(sid)["status"], [h["address"] for h in store.hosts(sid, limit=None)]


def _collect(app, reply: str, until, seconds: float = 60) -> list[dict]:
    got: list[dict] = []
    with app.connection_for_write() as conn:
        q = conn.SimpleQueue(reply)
        deadline = time.time() + seconds
        while time.time() < deadline and not until(got):
            try:
                m = q.get(timeout=0.5)
            except q.Empty:
                continue
            m.ack()
            got.append(m.payload["msg"])
        q.close()
    return got


# ---------------------------------------------------------------- replay protection
def test_a_signed_job_runs_once_across_engines_and_restarts(redis, workers, key_file):
    """The nonce is claimed in the broker: engine B refuses what engine A ran, and so does A after a restart."""
    workers.start("replay-a", [NET], "replay-a@test")
    workers.start("replay-b", [NET], "replay-b@test")
    app = make_app(redis.url)
    key = signing.load_key(key_file)
    reply = "smbsentry.results.replay-test"
    opts = {"ports": [PORT], "timeout": 3.0, "checks": "default", "dialects": "range", "rate": 0}
    job = signing.new_job(41, 0, ["127.61.0.1"], opts, reply)
    sig = signing.sign(key, job)

    def kinds(msgs: list[dict], kind: str) -> list[dict]:
        return [m for m in msgs if m["type"] == kind]

    with _lab("127.61.0.1"):
        app.send_task(TASK_NAME, args=[job, sig], queue="replay-a")
        first = _collect(app, reply, lambda g: kinds(g, "done"))
        assert len(kinds(first, "host")) == 1 and kinds(first, "done")[0]["engine"]["name"] == "replay-a@test"
        # the same signed message, captured from the broker and sent again, to the other engine
        app.send_task(TASK_NAME, args=[job, sig], queue="replay-b")
        second = _collect(app, reply, lambda g: kinds(g, "refused"))
        # ... and to the first engine after a restart (its memory is gone; the broker remembers)
        workers.stop_all()
        workers.start("replay-a", [NET], "replay-a2@test")
        app.send_task(TASK_NAME, args=[job, sig], queue="replay-a")
        third = _collect(app, reply, lambda g: kinds(g, "refused"))
    for msgs, engine in ((second, "replay-b@test"), (third, "replay-a2@test")):
        (refusal,) = kinds(msgs, "refused")
        assert refusal["reason"] == "replay" and refusal["engine"]["name"] == engine, msgs
        assert not kinds(msgs, "host") and not kinds(msgs, "start")
    with app.connection_for_write() as conn, conn.default_channel.conn_or_acquire() as client:
        assert client.get(shared.NONCE_PREFIX + job["nonce"]) == b"done"
        ttl = client.pttl(shared.NONCE_PREFIX + job["nonce"])
    assert 0 < ttl <= (signing.DEFAULT_MAX_AGE + signing.CLOCK_SKEW) * 1000   # remembered as long as a job is valid


def test_the_nonce_store_in_redis(redis):
    """Claims, leases, takeover after a lapsed lease, done, release by the owner only; a broker that is down
    is an error (the task is retried), never a pass."""
    n = shared.RedisNonces(make_app(redis.url), ttl=60, lease=1.0)
    assert n.claim("a", "e1") == shared.NEW
    assert n.claim("a", "e2") == shared.BUSY
    assert n.renew("a", "e1") and not n.renew("a", "e2")
    time.sleep(1.3)                                   # e1 stopped heartbeating: its lease lapsed
    assert n.claim("a", "e2") == shared.TAKEOVER
    assert not n.renew("a", "e1")
    n.release("a", "e1")                              # not the owner any more: nothing happens
    assert n.claim("a", "e3") == shared.BUSY
    n.finish("a", "e2")
    assert n.claim("a", "e3") == shared.DONE
    assert n.claim("b", "e1") == shared.NEW
    n.release("b", "e1")                              # its scan failed: Celery's retry may claim it again
    assert n.claim("b", "e2") == shared.NEW
    redis.stop()
    with pytest.raises(shared.SharedStateError):
        n.claim("c", "e1")
    redis.start()
    assert n.claim("c", "e1") == shared.NEW          # reconnects by itself


# ---------------------------------------------------------------- before sending
def test_no_engine_on_the_queue_fails_fast(redis, workers, key_file, tmp_path):
    workers.start("somebody", [NET], "somebody@test")   # alive, but on another queue
    db = tmp_path / "none.db"
    t0 = time.monotonic()
    p = _scan(redis.url, key_file, db, "127.61.1.1-4", "--queue", "nobody", "--engine-wait", "1", timeout=60)
    assert time.monotonic() - t0 < 30
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("smbsentry: no live engine serves queue nobody") and "--resume" in lines[0]
    assert _stored(db) == ("interrupted", [])


def test_an_engine_with_another_key_fails_fast(redis, workers, key_file, tmp_path):
    other = tmp_path / "other.key"
    signing.generate_key(other)
    w = Workers(redis.url, str(other), tmp_path)
    try:
        w.start("wrongkey", [NET], "wrongkey@test")
        p = _scan(redis.url, key_file, tmp_path / "wk.db", "127.61.1.1-4", "--queue", "wrongkey", timeout=60)
    finally:
        w.stop_all()
    assert p.returncode == 1, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "engine wrongkey@test on queue wrongkey holds another key" in line
    assert signing.key_id(signing.load_key(key_file)) in line and signing.load_key(key_file).decode() not in line


# ---------------------------------------------------------------- refusals reach the central side
def test_an_out_of_range_refusal_ends_the_shard_with_a_clear_error(redis, workers, key_file, tmp_path):
    workers.start("narrow", ["127.61.1.0/24"], "narrow@test")
    db = tmp_path / "narrow.db"
    t0 = time.monotonic()
    p = _scan(redis.url, key_file, db, "127.61.2.1-3", "--queue", "narrow", "-q", timeout=60)
    assert time.monotonic() - t0 < 30
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines() == [
        "failed: shard 0 (queue narrow, 3 targets, first 127.61.2.1): refused by engine narrow@test: out-of-range: "
        "127.61.2.1, 127.61.2.2, 127.61.2.3 outside 127.61.1.0/24"]
    assert _stored(db) == ("interrupted", [])


def test_a_bad_signature_refusal_reaches_the_central_side(redis, workers, key_file, tmp_path):
    """Past the key check (an engine whose key changed after it was looked at): its unsigned refusal ends the
    shard at once instead of leaving the central side waiting."""
    from smbsentry.engines.central import DistributedScan
    from smbsentry.engines.routes import Router
    from smbsentry.discover.targets import TargetSet

    workers.start("badsig", [NET], "badsig@test")
    other = tmp_path / "other.key"
    signing.generate_key(other)
    scan = DistributedScan(make_app(redis.url), signing.load_key(other), Router(default="badsig"),
                           {"ports": [PORT], "timeout": 3.0, "checks": "default", "dialects": "range", "rate": 0},
                           scan_id=7, shard_size=2, check_engines=False, timeout=60)
    t0 = time.monotonic()
    summary = scan.run(TargetSet(["127.61.3.1-4"]))
    assert time.monotonic() - t0 < 30 and not summary.timed_out
    assert summary.shards == 2 and summary.shards_failed == 2 and not summary.complete
    assert summary.refused == {"bad-signature": 2} and summary.with_smb == 0
    assert all("refused by engine badsig@test: bad-signature" in e and "key differs" in e for e in summary.errors)


def test_a_dead_engine_with_nobody_to_take_over_fails_its_shard(redis, workers, key_file, tmp_path):
    """The only engine of a queue is killed mid-shard: after --stall-timeout without a live engine the shard
    fails with the reason, and the scan ends (it used to wait for ever)."""
    victim = workers.start("lonely", [NET], "lonely@test")
    db = tmp_path / "lonely.db"
    with _lab("127.61.4.1-20"):
        p = _scan(redis.url, key_file, db, "127.61.4.1-20", "--queue", "lonely", "--rate", "6", "--stall-timeout", "3",
                  "--shard-size", "20", wait=False)
        deadline = time.time() + 60
        while stored_hosts(db) < 2 and time.time() < deadline:
            time.sleep(0.2)
        os.kill(victim.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert "Traceback" not in err
    assert "failed: shard 0 (queue lonely, 20 targets, first 127.61.4.1): " in err
    assert "no live engine on queue lonely" in err
    status, hosts = _stored(db)
    assert status == "interrupted" and 2 <= len(hosts) < 20


def test_an_engine_that_keeps_failing_a_shard_ends_it_with_its_error(redis, workers, key_file, tmp_path):
    """An engine whose own store cannot be opened fails every run of the shard; each failure is reported, the
    shard is sent again, and after three attempts it ends with the engine's error (not a silent wait)."""
    workers.start("brokendb", [NET], "brokendb@test", extra_args=["--db", str(tmp_path / "missing-dir" / "x.db")])
    p = _scan(redis.url, key_file, tmp_path / "central.db", "127.61.8.1-2", "--queue", "brokendb", "-q", timeout=90)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    line = lines[0]
    assert line.startswith("failed: shard 0 (queue brokendb, 2 targets, first 127.61.8.1): given up after 3 attempts "
                           "(engine brokendb@test failed: StoreError: cannot open database"), line
    assert workers.log("brokendb@test").count("scan 1 shard 0: 2 targets") == 3


# ---------------------------------------------------------------- broker outages
def _scan_into_outage(redis: RedisServer, workers: Workers, key_file: str, db: Path, third: int, broker_wait: str,
                      down: float) -> tuple[int, str]:
    """A slow scan of 127.61.<third>.1-40; Redis stopped once hosts are stored, started `down` seconds later.
    Returns the scan's exit status and stderr."""
    workers.start("outage", [NET], "outage@test")
    spec = f"127.61.{third}.1-40"
    with _lab(spec):
        p = _scan(redis.url, key_file, db, spec, "--queue", "outage", "--rate", "15", "--shard-size", "10",
                  "--broker-wait", broker_wait, wait=False)
        deadline = time.time() + 60
        while stored_hosts(db) < 3 and time.time() < deadline and p.poll() is None:
            time.sleep(0.1)
        assert p.poll() is None and stored_hosts(db) >= 3, p.stderr.read() if p.poll() is not None else "no hosts stored"
        redis.stop()
        time.sleep(down)
        redis.start()
        _out, err = p.communicate(timeout=180)
    return p.returncode, err


def _all_stored_once(db: Path, prefix: str, n: int = 40) -> None:
    status, hosts = _stored(db)
    assert status == "finished"
    assert sorted(hosts) == sorted(f"{prefix}.{i}" for i in range(1, n + 1)) and len(hosts) == len(set(hosts))


def test_a_broker_outage_within_broker_wait_loses_nothing(redis, workers, key_file, tmp_path):
    rc, err = _scan_into_outage(redis, workers, key_file, tmp_path / "outage.db", 5, "60", 3.0)
    assert rc == 0, err
    assert "Traceback" not in err
    assert "smbsentry: broker unreachable (" in err and "retrying for up to 60s" in err and "smbsentry: broker back after" in err
    _all_stored_once(tmp_path / "outage.db", "127.61.5")
    assert "40 targets in 4 shards (4 done, 0 failed" in err


def test_a_longer_outage_stops_the_scan_and_resume_finishes_it(redis, workers, key_file, tmp_path):
    db = tmp_path / "resume.db"
    rc, err = _scan_into_outage(redis, workers, key_file, db, 6, "2", 6.0)
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[0].startswith("smbsentry: broker unreachable (")       # said when the outage began
    final = lines[-1]
    assert len(lines) == 2 and final.startswith("smbsentry: the broker was unreachable for "), err
    assert "(--broker-wait 2)" in final and "finish it with: smbsentry scan --resume" in final
    status, before = _stored(db)
    assert status == "interrupted" and 3 <= len(before) < 40
    scan_id = final.split("scan --resume ")[1].split()[0]
    assert f"scan {scan_id} interrupted with {len(before)} hosts stored" in final
    # the broker is back: the engine reconnects by itself; resume through it
    with _lab("127.61.6.1-40"):
        r = _scan(redis.url, key_file, db, "--resume", scan_id)
    assert r.returncode == 0, r.stderr
    assert f"; {len(before)} hosts were already done" in r.stderr
    _all_stored_once(db, "127.61.6")


def test_resume_refuses_what_it_cannot_resume(redis, key_file, tmp_path):
    from smbsentry.store import Store

    db = tmp_path / "local.db"
    with Store.open(str(db)) as store:
        local = store.begin_scan(["127.61.7.1"], {"targets": ["127.61.7.1"]})
    r = _scan(redis.url, key_file, db, "--resume", str(local))
    assert r.returncode == 2 and r.stderr.strip() == f"smbsentry: scan {local} was not run through engines: resume it without --engines"
    r = _scan(redis.url, key_file, db, "--resume", str(local), "127.61.7.1")
    assert r.returncode == 2 and "give no targets" in r.stderr


def test_scan_help_names_the_engine_options():
    from typer.testing import CliRunner

    from smbsentry.cli import app

    out = CliRunner().invoke(app, ["scan", "--help"], env={"COLUMNS": "200"}).output
    for option in ("--broker-wait", "--stall-timeout", "--engine-wait", "--resume"):
        assert option in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_a_distributed_scan_as_interrupted_130(redis, workers, key_file, tmp_path, sig):
    """As a local scan: the word "interrupted", exit 130, the hosts stored so far kept and the scan resumable;
    SIGTERM (a service manager, a CI job's timeout) ends it the same way, not with 143."""
    workers.start("stopme", [NET], "stopme@test")
    db = tmp_path / "stop.db"
    with _lab("127.61.7.1-20"):
        p = _scan(redis.url, key_file, db, "127.61.7.1-20", "--queue", "stopme", "--rate", "4", "--shard-size", "20",
                  wait=False)
        deadline = time.time() + 60
        while stored_hosts(db) < 2 and time.time() < deadline:
            time.sleep(0.2)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and " interrupted with " in err and "scan --resume" in err
    status, hosts = _stored(db)
    assert status == "interrupted" and 2 <= len(hosts) < 20
