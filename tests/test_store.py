"""The scan store against SQLite (tmp file) and a real PostgreSQL (Debian's, started here).

The PostgreSQL run skips when no postgres binaries exist, except in CI (CI=true) where it fails."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import create_engine, text

from pgcluster import PgCluster
from smbsentry.store import Store, StoreError, sort_key
from smbsentry.store.migrate import head


def finding(fid, status, severity="critical", port=445, cves=("CVE-2017-0144",)):
    return {"id": fid, "status": status, "severity": severity, "title": fid.upper(), "cves": list(cves), "references": [],
            "evidence": f"evidence for {fid}", "reason": None, "inferred": False, "port": port}


def host(addr, name="WS1", os_name="Windows 7 Professional 7601 Service Pack 1", findings=(), smb1=True):
    return {"address": addr, "hostname": None, "ports": {"445": "open", "139": "closed"},
            "smb1": {"enabled": smb1, "signing": "disabled", "native_os": os_name} if smb1 else {"enabled": False},
            "smb2": {"dialects": ["2.0.2", "2.1"], "signing": "enabled"},
            "identity": {"netbios_name": name, "netbios_domain": "LAB", "dns_name": f"{name.lower()}.lab.local", "os_name": os_name},
            "findings": list(findings), "errors": [], "duration_ms": 12}


# ---------------------------------------------------------------- PostgreSQL server
@pytest.fixture(scope="session")
def pg_url():
    cluster = PgCluster(preferred_port=55432).start()
    admin = create_engine(f"postgresql+psycopg://smbsentry@127.0.0.1:{cluster.port}/postgres", isolation_level="AUTOCOMMIT")
    yield admin, cluster.port
    admin.dispose()
    cluster.stop()
    cluster.remove()


_db_counter = iter(range(10**6))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "s.db")
    admin, port = request.getfixturevalue("pg_url")
    name = f"t{next(_db_counter)}_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    return f"postgresql://smbsentry@127.0.0.1:{port}/{name}"


@pytest.fixture
def store(url):
    s = Store.open(url)
    yield s
    s.close()


# ---------------------------------------------------------------- tests
def test_scan_lifecycle_and_queries(store):
    sid = store.begin_scan(["10.0.0.0/24"], {"checks": "default"})
    store.add_host(sid, host("10.0.0.10", "FS1", findings=[finding("ms17-010", "vulnerable"), finding("smbv1-enabled", "vulnerable", "high", cves=())]))
    store.add_host(sid, host("10.0.0.9", "DC1", os_name="Windows Server 2016 Standard 14393",
                             findings=[finding("ms17-010", "not_vulnerable")], smb1=False))
    store.add_host(sid, host("10.0.0.100", "WS7", findings=[finding("ms17-010", "likely")]))
    store.add_host(sid, host("10.0.1.5", "OTHER", os_name=None, findings=[finding("smb-signing-not-required", "vulnerable", "medium", cves=())]))
    store.finish_scan(sid, "finished")
    [row] = store.scans()
    assert row["status"] == "finished" and row["hosts"] == 4 and row["exposed"] == 3 and row["findings"] == 4
    assert row["targets"] == ["10.0.0.0/24"] and row["options"] == {"checks": "default"} and row["finished"]

    addrs = lambda hs: [h["address"] for h in hs]  # noqa: E731
    assert addrs(store.hosts(sid)) == ["10.0.0.9", "10.0.0.10", "10.0.0.100", "10.0.1.5"]  # numeric order
    assert addrs(store.hosts(sid, sort="-address")) == ["10.0.1.5", "10.0.0.100", "10.0.0.10", "10.0.0.9"]
    assert addrs(store.hosts(sid, finding="ms17-010")) == ["10.0.0.10", "10.0.0.100"]
    assert addrs(store.hosts(sid, finding="ms17-010", status="likely")) == ["10.0.0.100"]
    assert addrs(store.hosts(sid, finding="ms17-010", status="not_vulnerable")) == ["10.0.0.9"]
    assert addrs(store.hosts(sid, os="server 2016")) == ["10.0.0.9"]
    assert addrs(store.hosts(sid, subnet="10.0.0.0/25")) == ["10.0.0.9", "10.0.0.10", "10.0.0.100"]
    assert addrs(store.hosts(sid, subnet="10.0.1.0/24")) == ["10.0.1.5"]
    assert addrs(store.hosts(sid, search="ws7")) == ["10.0.0.100"]
    assert addrs(store.hosts(sid, search="%")) == []  # LIKE wildcards are literal
    assert addrs(store.hosts(sid, limit=2, offset=1)) == ["10.0.0.10", "10.0.0.100"]
    assert addrs(store.hosts(sid, sort="severity"))[0] in ("10.0.0.10", "10.0.0.100")
    assert store.count_hosts(sid, finding="ms17-010") == 2
    full = store.hosts(sid, search="FS1")[0]
    assert full == host("10.0.0.10", "FS1", findings=[finding("ms17-010", "vulnerable"), finding("smbv1-enabled", "vulnerable", "high", cves=())])
    services_only = host("10.0.2.1", "MAIL", smb1=False)
    services_only.update(ports={"445": "closed", "139": "filtered"}, smb1=None, services={"smtp": {"banner": "x"}})
    store.add_host(sid, services_only)
    st = store.stats(sid)
    assert st["hosts"] == 5 and st["smb1"] == 3 and st["unsigned"] == 1
    assert st["smb_hosts"] == 4 and st["other_hosts"] == 1  # SMBv1 3 of 4 hosts with SMB, not of 5
    assert dict(st["by_severity"])["critical"] == 2
    with pytest.raises(StoreError, match="no scan 999"):
        store.done_addresses(999)


def test_diff(store):
    a = store.begin_scan(["10.0.0.0/24"], {})
    store.add_hosts(a, [
        host("10.0.0.1", findings=[finding("ms17-010", "vulnerable"), finding("smbv1-enabled", "vulnerable", "high")]),
        host("10.0.0.2", findings=[finding("ms17-010", "likely")]),
        host("10.0.0.3", findings=[finding("ms17-010", "vulnerable")]),
        host("10.0.0.4", findings=[finding("cve-2020-0796", "unknown")]),
        host("10.0.0.5", findings=[finding("ms17-010", "not_vulnerable")]),
    ])
    store.finish_scan(a)
    b = store.begin_scan(["10.0.0.0/24"], {})
    store.add_hosts(b, [
        host("10.0.0.1", findings=[finding("ms17-010", "not_vulnerable")]),   # ms17 fixed, smbv1 gone -> not checked
        host("10.0.0.2", findings=[finding("ms17-010", "unknown")]),          # changed
        host("10.0.0.4", findings=[finding("cve-2020-0796", "vulnerable")]),  # new (was unknown)
        host("10.0.0.5", findings=[finding("ms17-010", "not_vulnerable")]),   # same
        host("10.0.0.6", findings=[finding("ms17-010", "vulnerable")]),       # new host, new finding
    ])
    store.finish_scan(b)
    d = store.diff(a, b)
    assert d.new_hosts == ["10.0.0.6"] and d.gone_hosts == ["10.0.0.3"]
    assert [(i["address"], i["id"]) for i in d.new_findings] == [("10.0.0.4", "cve-2020-0796"), ("10.0.0.6", "ms17-010")]
    assert [(i["address"], i["id"], i["new_status"]) for i in d.fixed_findings] == [("10.0.0.1", "ms17-010", "not_vulnerable")]
    # no verdict in the newer scan is not a fix (and these scans recorded no check set: a warning says so)
    assert [(i["address"], i["id"], i["why"]) for i in d.not_checked_findings] == [("10.0.0.1", "smbv1-enabled", "no-verdict")]
    assert {w["code"] for w in d.warnings} == {"options-unknown"}
    assert [(i["address"], i["old_status"], i["new_status"]) for i in d.changed_findings] == [("10.0.0.2", "likely", "unknown")]
    assert store.diff(b, b).empty


def test_killed_scan_keeps_finished_hosts(url):
    s = Store.open(url)
    sid = s.begin_scan(["127.0.0.0/24"], {})
    for i in range(1, 8):
        s.add_host(sid, host(f"127.0.0.{i}"))
    time.sleep(s.FLUSH_SECONDS * 3)  # the background flusher writes within a second
    s.engine.dispose()  # a crash: no finish_scan, no close
    s._closed = True

    s2 = Store.open(url)
    assert s2.done_addresses(sid) == {f"127.0.0.{i}" for i in range(1, 8)}
    assert s2.scans()[0]["status"] == "running"
    assert s2.mark_interrupted(older_than=0) == [sid]
    assert s2.scan(sid)["status"] == "interrupted"
    done = s2.resume_scan(sid)
    assert len(done) == 7 and s2.scan(sid)["status"] == "running"
    s2.add_host(sid, host("127.0.0.8"))
    s2.add_host(sid, host("127.0.0.3", findings=[finding("ms17-010", "vulnerable")]))  # re-scanned host replaces its row
    s2.finish_scan(sid)
    row = s2.scan(sid)
    assert row["status"] == "finished" and row["hosts"] == 8 and row["exposed"] == 1
    s2.close()


def test_flush_is_batched_but_timely(store):
    sid = store.begin_scan(["x"], {})
    store.add_host(sid, host("10.1.0.1"))
    with store.engine.connect() as conn:  # the second connection sees it within a second
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            n = conn.execute(text("SELECT count(*) FROM hosts")).scalar_one()
            conn.rollback()
            if n:
                break
            time.sleep(0.05)
    assert n == 1


def test_audits_and_plans(store):
    sid = store.begin_scan(["x"], {})
    store.add_audit({"host": "WS-FIN-07", "facts": {"build": 7601}, "verdicts": []}, scan_id=sid)
    store.add_plan({"steps": [{"kb": "KB4012212"}]})
    assert store.audits(sid)[0]["facts"]["build"] == 7601
    assert store.plans()[0]["steps"][0]["kb"] == "KB4012212"


def test_schema_at_head_and_newer_schema_refused(url):
    Store.open(url).close()
    s = Store.open(url)  # reopening an up-to-date database is a no-op
    s.close()
    eng = create_engine(Store.open(url).engine.url)
    with eng.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head()
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    eng.dispose()
    with pytest.raises(StoreError, match=r"database schema 9999_future is newer than this smbsentry \(0001\): upgrade smbsentry"):
        Store.open(url)


def test_older_schema_is_migrated(tmp_path):
    """A database with no revision (made before the store existed / empty) is upgraded to head."""
    path = tmp_path / "old.db"
    eng = create_engine(f"sqlite:///{path}")
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    eng.dispose()
    s = Store.open(str(path))
    sid = s.begin_scan(["a"], {})
    s.add_host(sid, host("10.0.0.1"))
    assert s.done_addresses(sid) == {"10.0.0.1"}
    s.close()


def test_urls(tmp_path, monkeypatch):
    from smbsentry.store import resolve_url

    monkeypatch.setenv("SMBSENTRY_DB", str(tmp_path / "env.db"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.delenv("SMBSENTRY_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_url().endswith("smbsentry/smbsentry.db")
    with pytest.raises(StoreError, match="cannot open database"):
        Store.open("postgresql://nobody@127.0.0.1:1/none")


def test_sort_key():
    assert sort_key("10.0.0.9") < sort_key("10.0.0.10") < sort_key("::1") < sort_key("host.lab")


def test_schema_head_constant_matches_the_migrations():
    """Store.open skips Alembic when the database is at SCHEMA_HEAD: the
    constant must name the newest migration."""
    from smbsentry.store.db import SCHEMA_HEAD
    from smbsentry.store.migrate import script_directory

    assert script_directory().get_current_head() == SCHEMA_HEAD


def test_diff_compares_like_with_like(store):
    """Different ports: a finding on a port the newer scan did not probe is not checked, and a warning says why."""
    a = store.begin_scan(["10.0.1.0/24"], {"checks": "default", "ports": "445,139"})
    store.add_hosts(a, [host("10.0.1.1", findings=[finding("smbv1-enabled", "vulnerable", "high", port=139),
                                                    finding("smbv1-enabled", "vulnerable", "high", port=445)])])
    store.finish_scan(a)
    b = store.begin_scan(["10.0.1.0/24"], {"checks": "default", "ports": "445"})
    store.add_hosts(b, [host("10.0.1.1", name="WS1-NEW", smb1=False,
                             findings=[finding("smbv1-enabled", "not_vulnerable", "high", port=445)])])
    store.finish_scan(b)
    d = store.diff(a, b)
    assert d.warnings == [{"code": "ports", "old": "139,445", "new": "445"}]
    assert [(i["port"], i["why"]) for i in d.not_checked_findings] == [(139, "port-not-scanned")]
    assert [(i["port"], i["new_status"]) for i in d.fixed_findings] == [(445, "not_vulnerable")]
    changes = {c["field"]: (c["before"], c["after"]) for c in d.identity_changes}
    assert changes["name"] == ("WS1", "WS1-NEW") and changes["smb1"] == ("on", "off")
    assert d.scans["new"]["check_ids"] and "smbv1-enabled" in d.scans["new"]["check_ids"]


def test_host_page_reads_every_host_once_in_stored_order(store):
    """The dashboard's digest reads a scan by row id, a page at a time: across page boundaries every
    host comes once, in the order stored, and only this scan's hosts."""
    sid = store.begin_scan(["10.0.0.0/24"])
    other = store.begin_scan(["10.9.0.0/24"])
    order = [f"10.0.0.{i}" for i in (7, 3, 250, 1, 99, 12, 4)]
    for a in order:
        store.add_host(sid, host(a))
        store.add_host(other, host(a.replace("10.0.", "10.9.")))
    seen, after = [], 0
    while True:
        page = store.host_page(sid, after, 3)
        seen += [h["address"] for _, h in page]
        if len(page) < 3:
            break
        after = page[-1][0]
    assert seen == order
    assert store.host_page(sid, after + 10_000, 3) == []
