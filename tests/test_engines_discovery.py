"""Discovery through the engines (issue 19 item 4): real Redis, two real engine processes, a real lab.

Two engines on one queue sweep a loopback range: the central side sends each
a discovery shard (shard i of 2 of one seeded permutation), never a list of
addresses.  Every live host is found exactly once, each by the engine whose
shard holds it; a live host outside the engines' --allow is never probed and
the addresses no engine may scan are reported as not covered (exit 1).
Loopback only (127.60.x, 127.61.x); run it in a network namespace of your own.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import pytest

from smbsentry.discover.permute import AddressSpace
from smbsentry.discover.stage import Request
from smbsentry.engines import signing
from smbsentry.engines.app import make_app
from smbsentry.engines.routes import Router
from smbsentry.discover.targets import TargetSet
from test_engines import MIX, PORT, Workers, key_file, redis_url, workers  # noqa: F401 - the fixtures

RANGE = "127.60.0.0/26"
LIVE = "127.60.0.1-12"
STRAY = "127.60.0.50"  # live, but outside the engines' --allow in the second scan: never probed


def _shard_addresses(target_set: TargetSet, seed: int, index: int, count: int, cover: list[str]) -> set[str]:
    blocks, excludes = target_set.ipv4_ranges()
    space = AddressSpace(blocks, excludes)
    nets = [ipaddress.ip_network(c) for c in cover]
    req = Request(space, (PORT,), shard=(index, count), seed=seed,
                  cover=AddressSpace((int(n.network_address), int(n.broadcast_address)) for n in nets))
    return {str(ipaddress.ip_address(a)) for a in req.addresses(req.permutation())}


@pytest.mark.parametrize("mode", ["connect", "syn"])
def test_two_engines_sweep_their_shards_and_find_every_host_once(workers, redis_url, key_file, mode):  # noqa: F811
    from smbsentry.engines.central import DistributedScan
    from smbsentry.lab.background import BackgroundLab

    if mode == "syn" and os.geteuid() != 0:
        pytest.skip("syn discovery needs raw sockets (root)")
    for name in ("sweep-a@test", "sweep-b@test"):
        workers.start("sweep", ["127.60.0.0/16"], name)
    messages: list[dict] = []
    options = {"ports": [PORT], "timeout": 3.0, "checks": "default", "dialects": "range", "rate": 0}
    targets = TargetSet([RANGE])
    with BackgroundLab(LIVE, ports=[PORT], mix=MIX, bind_mode="per-address"):
        scan = DistributedScan(make_app(redis_url), signing.load_key(key_file), Router(default="sweep"), options,
                               scan_id=41, stall_timeout=30, timeout=120, on_message=messages.append,
                               sweep={"mode": mode, "retries": 1})
        summary = scan.run(targets)
    assert summary.complete and summary.not_covered == 0, summary.to_dict()
    starts = {m["shard"]: m for m in messages if m["type"] == "start"}
    # two discovery shards, i of 2, each run by its own engine, no address list in either job
    assert sorted(tuple(m["sweep"]) for m in starts.values()) == [(0, 2), (1, 2)]
    assert sorted(m["engine"]["name"] for m in starts.values()) == ["sweep-a@test", "sweep-b@test"]
    assert all(m["targets"] == 0 for m in starts.values())
    hosts = [m for m in messages if m["type"] == "host"]
    found = [m["host"]["address"] for m in hosts]
    live = {f"127.60.0.{i}" for i in range(1, 13)}
    assert sorted(found) == sorted(live) and summary.duplicates == 0  # every live host once, nothing else
    assert all(m["host"]["ports"][str(PORT)] == "open" and m["host"]["smb2"] for m in hosts)
    shards = {}
    for m in hosts:  # each host came from the engine whose shard holds it
        index, count = starts[m["shard"]]["sweep"]
        mine = shards.setdefault(index, _shard_addresses(targets, scan.seed, index, count, ["127.60.0.0/16"]))
        assert m["host"]["address"] in mine and m["engine"]["name"] == starts[m["shard"]]["engine"]["name"]
    done = {m["shard"]: m["summary"] for m in messages if m["type"] == "done"}
    walked = {starts[s]["sweep"][0]: d["discovery"]["addresses"] for s, d in done.items()}
    # each engine walked exactly its shard: the sizes add up to the range, and neither walked it all
    sizes = {i: len(_shard_addresses(targets, scan.seed, i, 2, ["127.60.0.0/16"])) for i in (0, 1)}
    assert walked == sizes and sum(sizes.values()) == summary.swept == AddressSpace(*targets.ipv4_ranges()).count
    lines = set(summary.discovery.values())
    assert len(summary.discovery) == 2
    assert all(line.startswith(f"discovery: {mode} (") for line in lines), lines


def test_addresses_no_engine_may_scan_are_reported_not_covered(workers, redis_url, key_file, tmp_path):  # noqa: F811
    """Through the CLI: the routed share outside the engines' --allow and the range no route covers are
    counted and named (exit 1); the live host there is never probed."""
    from smbsentry.lab.background import BackgroundLab
    from smbsentry.store import Store

    for name in ("cover-a@test", "cover-b@test"):
        workers.start("cover", ["127.60.0.0/27"], name)
    routes = tmp_path / "routes.yaml"
    routes.write_text("cover:\n  - 127.60.0.0/16\n")
    db = tmp_path / "cover.db"
    common = ["--engines", "--broker", redis_url, "--key-file", key_file, "--db", str(db)]
    with BackgroundLab(LIVE, ports=[PORT], mix=MIX, bind_mode="per-address"), \
         BackgroundLab(STRAY, ports=[PORT], mix=MIX, bind_mode="per-address"):
        p = subprocess.run(
            [sys.executable, "-m", "smbsentry.cli", "scan", RANGE, "127.61.0.0/30", "--route", str(routes),
             "--discovery", "connect", "--ports", str(PORT), "--timeout", "3", "--format", "jsonl", *common],
            capture_output=True, text=True, timeout=180)
        # incomplete, so recorded interrupted: --resume sweeps again the saved way, stores nothing twice
        resumed = subprocess.run([sys.executable, "-m", "smbsentry.cli", "scan", "--resume", "1", *common],
                                 capture_output=True, text=True, timeout=180)
    assert p.returncode == 1, p.stderr
    assert resumed.returncode == 1 and "12 hosts were already done" in resumed.stderr, resumed.stderr
    assert "not covered: 33 addresses" in resumed.stderr and ": discovery: connect (" in resumed.stderr
    with Store.open(str(db)) as store:
        (scan,) = store.scans()
        stored = [h["address"] for h in store.hosts(scan["id"], limit=None)]
        assert len(stored) == len(set(stored)) and scan["id"] == 1
        stored = set(stored)
        options = store.scan(scan["id"])["options"]
    assert stored == {f"127.60.0.{i}" for i in range(1, 13)} and STRAY not in p.stdout
    assert options["engines"]["discovery"] == "connect"  # --resume sweeps again the same way
    # a CIDR's hosts: 127.60.0.32-62 routed to the queue but outside --allow (31), 127.61.0.1-2 routed nowhere (2)
    assert "not covered: 33 addresses of the swept ranges no engine may scan" in p.stderr
    assert "127.61.0.1-127.61.0.2 (no route)" in p.stderr
    assert "127.60.0.32-127.60.0.62 (outside the --allow of engine cover-" in p.stderr
    assert "discovery: 31 addresses swept by 2 engines, 12 SMB confirmed" in p.stderr
    assert p.stderr.count(": discovery: connect (adaptive timeouts") == 2


def test_a_silent_engine_s_discovery_shard_is_walked_again(workers, redis_url, key_file, tmp_path):  # noqa: F811
    """The stall timeout, the nonce claims and the store's once-per-address hold for discovery shards:
    SIGKILL an engine after its first host; the central side signs its shard again (new nonce) for the
    other engine, which walks it whole; the hosts found twice are stored once."""
    import signal

    from smbsentry.engines.central import DistributedScan
    from smbsentry.lab.background import BackgroundLab
    from smbsentry.store import Store

    env = {"SMBSENTRY_VISIBILITY_TIMEOUT": "3600"}  # no redelivery by the broker: the central re-send does it
    first = workers.start("stall", ["127.60.0.0/16"], "stall-first@test", env)
    workers.start("stall", ["127.60.0.0/16"], "stall-second@test", env)
    killed: list[int] = []

    def on_message(msg: dict) -> None:
        if not killed and msg["type"] == "host" and msg["engine"]["name"] == "stall-first@test":
            os.kill(first.pid, signal.SIGKILL)
            killed.append(msg["shard"])

    store = Store.open(f"sqlite:///{tmp_path / 'stall.db'}")
    sid = store.begin_scan([RANGE])
    options = {"ports": [PORT], "timeout": 3.0, "checks": "default", "dialects": "range", "rate": 10}
    with BackgroundLab(LIVE, ports=[PORT], mix=MIX, bind_mode="per-address"):
        scan = DistributedScan(make_app(redis_url), signing.load_key(key_file), Router(default="stall"), options,
                               store=store, scan_id=sid, stall_timeout=5, timeout=180, on_message=on_message,
                               sweep={"mode": "connect", "retries": 0})
        summary = scan.run(TargetSet([RANGE]))
    assert killed, "the first engine never reported a host"
    assert summary.complete and summary.resent >= 1 and summary.not_covered == 0, summary.to_dict()
    hosts = store.hosts(sid, limit=None)
    addresses = [h["address"] for h in hosts]
    assert sorted(addresses) == sorted(f"127.60.0.{i}" for i in range(1, 13))  # each once, though some found twice
    assert "stall-second@test" in {h["engine"]["name"] for h in hosts}
    assert f"scan {sid} shard {killed[0]}: discovery shard" in workers.log("stall-second@test")
    store.close()
