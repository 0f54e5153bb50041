"""Engines over the other broker transports (issue 9): Redis with TLS and a password, RabbitMQ.

Real brokers started for the module on loopback, real engine processes, a real lab
(127.58.x for TLS Redis, 127.59.x for RabbitMQ, per-address binding on a high port).

* redis-server or rabbitmq-server missing: skip locally with the reason, FAIL with CI=true
  (scripts/install-system-deps installs both).  The RabbitMQ node runs as root from
  /usr/lib/rabbitmq/bin with its own HOME (Erlang cookie), mnesia/log dirs, node name, AMQP,
  distribution and epmd ports, so it touches no system RabbitMQ.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import in_ci
from smbsentry.engines import signing
from test_engines import MIX, Workers

PORT = 44657
SECRET = "tls-engines-pw"


def _free_port(avoid: tuple[int, ...] = ()) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid and port < 45000:
            return port


def _wait_port(port: int, proc: subprocess.Popen, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_server_cert(d: Path) -> dict:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (openssl CLI)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=smbsentry test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    # another CA the server's certificate is not signed by
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other-ca.pem",
             "-days", "2", "-subj", "/CN=some other CA", cwd=d)
    return {"ca": str(d / "ca.pem"), "cert": str(d / "server.pem"), "key": str(d / "server.key"),
            "other_ca": str(d / "other-ca.pem")}


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "engines.key"
    signing.generate_key(path)
    return str(path)


# ---------------------------------------------------------------- Redis over TLS with a password
@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    exe = shutil.which("redis-server")
    if exe is None or shutil.which("openssl") is None:
        msg = "redis-server/openssl not installed (apt-get install redis-server openssl; scripts/install-system-deps)"
        if in_ci():
            pytest.fail(f"{msg}; CI=true so this is an error, not a skip", pytrace=False)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("redis-tls")
    certs = make_ca_and_server_cert(d)
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", certs["cert"], "--tls-key-file", certs["key"],
                             "--tls-ca-cert-file", certs["ca"], "--tls-auth-clients", "no",
                             "--requirepass", SECRET, "--dir", str(d), "--save", "", "--appendonly", "no"],
                            stdout=open(d / "redis.log", "w"), stderr=subprocess.STDOUT)
    if not _wait_port(port, proc, 10):
        proc.kill()
        pytest.fail(f"redis-server with TLS did not start: {(d / 'redis.log').read_text()[-2000:]}")
    yield {"url": f"rediss://:{SECRET}@127.0.0.1:{port}/0", "port": port, **certs}
    proc.terminate()
    proc.wait(10)


def _scan_cli(url: str, queue: str, key_file: str, targets: str, db: Path, env: dict, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "smbsentry.engines", "scan", targets, "--queue", queue, "--broker", url,
         "--key-file", key_file, "--ports", str(PORT), "--timeout", "3", "--db", str(db), "--shard-size", "4",
         "--stall-timeout", "60"],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})


def test_redis_tls_with_password_end_to_end(tls_redis, key_file, tmp_path, monkeypatch):
    """An engine and a distributed scan over rediss:// with a password; the CA comes through SMBSENTRY_BROKER_SSL."""
    from smbsentry.engines.cli import engines_info, main_distributed_scan
    from smbsentry.lab.background import BackgroundLab
    from smbsentry.store import Store

    url = tls_redis["url"]
    ssl_env = json.dumps({"ssl_cert_reqs": "required", "ssl_ca_certs": tls_redis["ca"]})
    monkeypatch.setenv("SMBSENTRY_BROKER_SSL", ssl_env)   # the engine process, Workers' ping and the scan
    w = Workers(url, key_file, tmp_path)
    try:
        w.start("tls-seg", ["127.58.0.0/16"], "tls-a@test")
        assert [r["name"] for r in engines_info(url)] == ["tls-a@test"]
        db = f"sqlite:///{tmp_path / 'tls.db'}"
        with BackgroundLab("127.58.0.1-10", ports=[PORT], mix=MIX, bind_mode="per-address"):
            rc = main_distributed_scan(["127.58.0.1-10"], "tls-seg", None, url, db, 4, key_file=key_file,
                                       ports=str(PORT), timeout=3.0, quiet=True)
        assert rc == 0, w.log("tls-a@test")[-3000:]
        log = w.log("tls-a@test")
        assert SECRET not in log  # the password never reaches the engine's log
        assert "rediss://" in log
    finally:
        w.stop_all()
    with Store.open(db) as store:
        sid = store.latest_scan()
        meta = store.scan(sid)
        hosts = store.hosts(sid, limit=None)
    assert meta["status"] == "finished" and meta["hosts"] == 10
    assert {h["address"] for h in hosts} == {f"127.58.0.{i}" for i in range(1, 11)}
    assert all(h["engine"]["name"] == "tls-a@test" for h in hosts)
    assert any(f["status"] != "not_vulnerable" for h in hosts for f in h.get("findings") or [])


def test_redis_tls_wrong_password_is_a_clear_error(tls_redis, key_file, tmp_path):
    """A wrong password: the scan fails at once with the broker's reason and no traceback."""
    wrong = tls_redis["url"].replace(SECRET, "not-the-password")
    env = {"SMBSENTRY_BROKER_SSL": json.dumps({"ssl_cert_reqs": "required", "ssl_ca_certs": tls_redis["ca"]})}
    t0 = time.monotonic()
    p = _scan_cli(wrong, "tls-seg", key_file, "127.58.1.1-4", tmp_path / "wrong.db", env, timeout=90)
    print(p.stderr)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    err = p.stderr.lower()
    assert "smbsentry:" in err and ("password" in err or "auth" in err), p.stderr
    assert "not-the-password" not in p.stderr  # the given password is not echoed
    assert time.monotonic() - t0 < 60



def test_engine_with_wrong_password_logs_a_clear_error(tls_redis, key_file, tmp_path):
    """An engine given a wrong password keeps retrying (it outlives broker outages) and says why, once per
    attempt, with the password masked and no traceback."""
    wrong = tls_redis["url"].replace(SECRET, "not-the-password")
    env = {**os.environ, "SMBSENTRY_BROKER": wrong,
           "SMBSENTRY_BROKER_SSL": json.dumps({"ssl_cert_reqs": "required", "ssl_ca_certs": tls_redis["ca"]})}
    logfile = tmp_path / "engine.log"
    with open(logfile, "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "smbsentry.engines", "engine", "--queue", "tls-wrong",
                              "--key-file", key_file, "--allow", "127.58.0.0/16", "--name", "tls-wrong@test"],
                             env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while time.time() < deadline and "invalid username-password" not in logfile.read_text(errors="replace"):
                assert p.poll() is None, logfile.read_text(errors="replace")[-3000:]
                time.sleep(0.2)
        finally:
            p.terminate()
            p.wait(20)
    log = logfile.read_text(errors="replace")
    assert "Cannot connect to rediss://:**@127.0.0.1" in log and "invalid username-password" in log, log[-3000:]
    assert "Traceback" not in log and "not-the-password" not in log

def test_redis_tls_unknown_ca_is_a_clear_error(tls_redis, key_file, tmp_path):
    """Certificates are verified: a CA that did not sign the server's certificate is refused, no traceback."""
    env = {"SMBSENTRY_BROKER_SSL": json.dumps({"ssl_cert_reqs": "required", "ssl_ca_certs": tls_redis["other_ca"]})}
    p = _scan_cli(tls_redis["url"], "tls-seg", key_file, "127.58.1.1-4", tmp_path / "ca.db", env, timeout=90)
    print(p.stderr)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    assert "smbsentry:" in p.stderr and "certificate" in p.stderr.lower(), p.stderr


# ---------------------------------------------------------------- RabbitMQ
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _rabbit_exe(name: str) -> str | None:
    if (RABBIT_BIN / name).exists():   # Debian's /usr/sbin wrappers switch to the rabbitmq user
        return str(RABBIT_BIN / name)
    return shutil.which(name)


@pytest.fixture(scope="module")
def rabbitmq_url(tmp_path_factory):
    server, ctl = _rabbit_exe("rabbitmq-server"), _rabbit_exe("rabbitmqctl")
    if server is None or ctl is None:
        msg = ("rabbitmq-server is not installed (apt-get install rabbitmq-server; scripts/install-system-deps); "
               "the RabbitMQ transport is not tested here")
        if in_ci():
            pytest.fail(f"{msg}; CI=true so this is an error, not a skip", pytrace=False)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("rabbitmq")
    node_port = _free_port()
    dist_port = _free_port((node_port,))
    epmd_port = _free_port((node_port, dist_port))
    node = f"smbsentry{os.getpid()}x{node_port}@localhost"
    (d / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{node_port}\n")
    (d / "enabled_plugins").write_text("[].\n")
    env = {**os.environ, "HOME": str(d), "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
           "RABBITMQ_NODE_PORT": str(node_port), "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
           "RABBITMQ_DIST_PORT": str(dist_port), "ERL_EPMD_PORT": str(epmd_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
           "RABBITMQ_NODENAME": node, "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"), "RABBITMQ_PID_FILE": str(d / "pid")}
    proc = subprocess.Popen([server], env=env, stdout=open(d / "server.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)

    def stop() -> None:
        subprocess.run([ctl, "-n", node, "stop"], env=env, capture_output=True, timeout=60)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        epmd = shutil.which("epmd")
        if epmd:   # the node started an epmd of its own on epmd_port
            subprocess.run([epmd, "-port", str(epmd_port), "-kill"], env=env, capture_output=True, timeout=10)

    # await_startup fails at once while the node has not registered yet: poll it
    deadline = time.time() + 120
    ok = False
    while time.time() < deadline and proc.poll() is None:
        r = subprocess.run([ctl, "-n", node, "await_startup", "--timeout", "10"], env=env, capture_output=True,
                           timeout=60)
        if r.returncode == 0:
            ok = True
            break
        time.sleep(0.5)
    if not ok or not _wait_port(node_port, proc, 10):
        stop()
        pytest.fail(f"rabbitmq-server did not start: {(d / 'server.log').read_text(errors='replace')[-3000:]}")
    yield f"amqp://guest:guest@127.0.0.1:{node_port}//"
    stop()


def test_rabbitmq_end_to_end(rabbitmq_url, key_file, tmp_path, monkeypatch):
    """An engine and a distributed scan over amqp://: jobs on the engine's queue, signed replies on the
    scan's reply queue and the `engines` listing (remote control) all go through RabbitMQ."""
    from smbsentry.engines.cli import engines_info, main_distributed_scan
    from smbsentry.lab.background import BackgroundLab
    from smbsentry.store import Store

    monkeypatch.delenv("SMBSENTRY_BROKER_SSL", raising=False)
    w = Workers(rabbitmq_url, key_file, tmp_path)
    try:
        w.start("amqp-seg", ["127.59.0.0/16"], "amqp-a@test")
        live = engines_info(rabbitmq_url)
        assert [r["name"] for r in live] == ["amqp-a@test"] and live[0]["queues"] == ["amqp-seg"]
        assert live[0]["allowed"] == ["127.59.0.0/16"]
        db = f"sqlite:///{tmp_path / 'amqp.db'}"
        with BackgroundLab("127.59.0.1-10", ports=[PORT], mix=MIX, bind_mode="per-address"):
            rc = main_distributed_scan(["127.59.0.1-10"], "amqp-seg", None, rabbitmq_url, db, 4, key_file=key_file,
                                       ports=str(PORT), timeout=3.0, quiet=True)
        assert rc == 0, w.log("amqp-a@test")[-3000:]
    finally:
        w.stop_all()
    with Store.open(db) as store:
        sid = store.latest_scan()
        meta = store.scan(sid)
        hosts = store.hosts(sid, limit=None)
    assert meta["status"] == "finished" and meta["hosts"] == 10
    assert {h["address"] for h in hosts} == {f"127.59.0.{i}" for i in range(1, 11)}
    assert all(h["engine"]["name"] == "amqp-a@test" and h["engine"]["queue"] == "amqp-seg" for h in hosts)


def test_rabbitmq_wrong_password_is_a_clear_error(rabbitmq_url, key_file, tmp_path):
    wrong = rabbitmq_url.replace("guest:guest@", "guest:not-the-password@")
    p = _scan_cli(wrong, "amqp-seg", key_file, "127.59.1.1-4", tmp_path / "wrong.db", {}, timeout=90)
    print(p.stderr)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    err = p.stderr.lower()
    assert "smbsentry:" in err and ("access_refused" in err or "auth" in err or "login" in err), p.stderr
    assert "not-the-password" not in p.stderr
