"""Store: scans, host results and findings in SQLite (default) or PostgreSQL.

    store = Store.open()                      # SMBSENTRY_DB or the user data dir
    sid = store.begin_scan(["10.0.0.0/24"], {"checks": "default"})
    store.add_host(sid, host.to_dict())       # batched, flushed at least every FLUSH_SECONDS
    store.finish_scan(sid, "finished")

add_host buffers; the buffer is written when it holds BATCH hosts, when the
oldest buffered host is FLUSH_SECONDS old (a background thread checks), and
on finish_scan / flush / close.  A killed scan therefore loses at most the
last second of hosts, and its row stays "running" until finish_scan or
mark_interrupted.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import create_engine, delete, event, func, insert, or_, select, update, and_, text
from sqlalchemy.engine import Engine, make_url

from ..model import SEVERITIES
from . import diff as dmod
from .diff import Diff
from .models import Audit, FindingRow, Host, Plan, Scan

BAD = ("vulnerable", "likely")
SCAN_STATUSES = ("running", "finished", "interrupted")
NO_SEVERITY = 9
SORTS = ("address", "-address", "name", "-name", "os", "-os", "severity", "-severity", "added", "-added")


#: The newest migration in store/migrations/versions (tests check they agree).
SCHEMA_HEAD = "0001"


def _schema_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, read with plain SQL (None: no table yet)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - no table yet, or not reachable: the slow path decides
        return None


class StoreError(Exception):
    """A store problem worth a one-line message (bad URL, newer schema, unknown scan)."""


def default_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("smbsentry")) / "smbsentry.db"


def resolve_url(url: str | None = None) -> str:
    """--db value, else SMBSENTRY_DB, else the SQLite file in the user data dir.

    A bare path means a SQLite file; postgresql:// and postgres:// use psycopg 3."""
    url = url or os.environ.get("SMBSENTRY_DB") or None
    if not url:
        path = default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def sort_key(address: str) -> str:
    """A string that sorts addresses numerically: IPv4, then IPv6, then names."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "n:" + address.lower()
    return ("4:%08x" % int(ip)) if ip.version == 4 else ("6:%032x" % int(ip))


def _subnet_range(subnet: str) -> tuple[str, str]:
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError as exc:
        raise StoreError(f"bad subnet {subnet!r}: {exc}") from None
    if net.version == 4:
        return "4:%08x" % int(net.network_address), "4:%08x" % int(net.broadcast_address)
    return "6:%032x" % int(net.network_address), "6:%032x" % int(net.broadcast_address)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _str(value: Any, limit: int = 300) -> str | None:
    return None if value is None else str(value)[:limit]


class Store:
    BATCH = 500
    FLUSH_SECONDS = 0.5

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.RLock()
        self._pending: list[tuple[int, dict, datetime]] = []
        self._pending_since: float | None = None
        self._closed = False
        self._flusher: threading.Thread | None = None

    # ---------------------------------------------------------------- open / close
    @classmethod
    def open(cls, url: str | None = None, migrate: bool = True) -> "Store":
        full = resolve_url(url)
        try:
            parsed = make_url(full)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises ArgumentError and friends
            raise StoreError(f"bad database URL {url!r}: {exc}") from None
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        try:
            engine = create_engine(parsed, future=True, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"cannot use database {parsed.render_as_string(hide_password=True)}: {exc}") from None
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            if _schema_revision(engine) != SCHEMA_HEAD:
                # Alembic (a fifth of a second to import) only when the
                # schema is missing, older or newer than this code's.
                from .migrate import check_and_upgrade

                check_and_upgrade(engine, migrate=migrate)
        except StoreError:
            engine.dispose()
            raise
        except Exception as exc:  # noqa: BLE001 - connection refused, auth failure ...
            engine.dispose()
            raise StoreError(f"cannot open database {parsed.render_as_string(hide_password=True)}: {exc}") from None
        return cls(engine)

    def close(self) -> None:
        with self._lock:
            self.flush()
            self._closed = True
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- writing a scan
    def begin_scan(self, targets: Iterable[str] | str, options: dict | None = None) -> int:
        tlist = [targets] if isinstance(targets, str) else [str(t) for t in targets]
        now = _now()
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(Scan).values(
                    started=now, updated=now, status="running", targets=tlist,
                    targets_key=" ".join(sorted(tlist)), options=_jsonable(options or {}),
                    hosts_count=0, exposed_count=0, findings_count=0,
                )
            )
            return int(result.inserted_primary_key[0])

    def add_host(self, scan_id: int, host: dict) -> None:
        """Queue one host result (the contract's JSON object, or a HostResult)."""
        if hasattr(host, "to_dict"):
            host = host.to_dict()
        with self._lock:
            self._pending.append((scan_id, host, _now()))
            if self._pending_since is None:
                self._pending_since = time.monotonic()
            if len(self._pending) >= self.BATCH or time.monotonic() - self._pending_since >= self.FLUSH_SECONDS:
                self.flush()
            else:
                self._ensure_flusher()

    def add_hosts(self, scan_id: int, hosts: Iterable[dict]) -> None:
        for h in hosts:
            self.add_host(scan_id, h)

    def _ensure_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(target=self._flush_loop, name="smbsentry-store-flush", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed:
            time.sleep(self.FLUSH_SECONDS / 2)
            with self._lock:
                if self._closed:
                    return
                if self._pending_since is not None and time.monotonic() - self._pending_since >= self.FLUSH_SECONDS:
                    self.flush()
                if not self._pending:
                    self._flusher = None
                    return

    def flush(self) -> int:
        """Write every queued host now; returns how many."""
        with self._lock:
            batch, self._pending, self._pending_since = self._pending, [], None
            if not batch:
                return 0
            host_rows, finding_rows, by_scan = [], [], {}
            latest: dict[int, dict] = {}
            for scan_id, h, added in batch:
                latest.setdefault(scan_id, {})[h["address"]] = (h, added)
            for scan_id, hosts in latest.items():
                counts = by_scan.setdefault(scan_id, [0, 0, 0, list(hosts)])
                for address, (h, added) in hosts.items():
                    row, frows = _host_rows(scan_id, h, added)
                    host_rows.append(row)
                    finding_rows.extend(frows)
                    bad = sum(1 for f in frows if f["status"] in BAD)
                    counts[0] += 1
                    counts[1] += 1 if bad else 0
                    counts[2] += bad
            with self.engine.begin() as conn:
                for scan_id, (n, exposed, nbad, addresses) in by_scan.items():
                    replaced = 0
                    for chunk in _chunks(addresses, 500):
                        old = conn.execute(
                            select(func.count()).select_from(Host).where(Host.scan_id == scan_id, Host.address.in_(chunk))
                        ).scalar_one()
                        if old:
                            replaced += old
                            conn.execute(delete(Host).where(Host.scan_id == scan_id, Host.address.in_(chunk)))
                            conn.execute(delete(FindingRow).where(FindingRow.scan_id == scan_id, FindingRow.address.in_(chunk)))
                    conn.execute(
                        update(Scan).where(Scan.id == scan_id).values(
                            hosts_count=Scan.hosts_count + n - replaced,
                            exposed_count=Scan.exposed_count + exposed,
                            findings_count=Scan.findings_count + nbad,
                            updated=_now(),
                        )
                    )
                    if replaced:
                        self._recount(conn, scan_id)
                conn.execute(insert(Host), host_rows)
                if finding_rows:
                    conn.execute(insert(FindingRow), finding_rows)
            return len(batch)

    def _recount(self, conn, scan_id: int) -> None:
        hosts = conn.execute(select(func.count()).select_from(Host).where(Host.scan_id == scan_id)).scalar_one()
        exposed = conn.execute(
            select(func.count(func.distinct(FindingRow.address))).where(FindingRow.scan_id == scan_id, FindingRow.status.in_(BAD))
        ).scalar_one()
        nbad = conn.execute(
            select(func.count()).select_from(FindingRow).where(FindingRow.scan_id == scan_id, FindingRow.status.in_(BAD))
        ).scalar_one()
        conn.execute(update(Scan).where(Scan.id == scan_id).values(hosts_count=hosts, exposed_count=exposed, findings_count=nbad))

    def finish_scan(self, scan_id: int, status: str = "finished") -> None:
        if status not in SCAN_STATUSES:
            raise StoreError(f"bad scan status {status!r} (one of {', '.join(SCAN_STATUSES)})")
        self.flush()
        with self.engine.begin() as conn:
            self._require(conn, scan_id)
            self._recount(conn, scan_id)
            conn.execute(update(Scan).where(Scan.id == scan_id).values(status=status, finished=_now(), updated=_now()))

    def resume_scan(self, scan_id: int) -> set[str]:
        """Mark an earlier scan running again; returns the addresses it already has."""
        with self.engine.begin() as conn:
            self._require(conn, scan_id)
            conn.execute(update(Scan).where(Scan.id == scan_id).values(status="running", finished=None, updated=_now()))
        return self.done_addresses(scan_id)

    def mark_interrupted(self, older_than: float = 0.0) -> list[int]:
        """Scans still 'running' whose last write is older than `older_than` seconds become 'interrupted'."""
        cutoff = _now().timestamp() - older_than
        changed = []
        with self.engine.begin() as conn:
            for sid, updated in conn.execute(select(Scan.id, Scan.updated).where(Scan.status == "running")):
                ts = (updated.replace(tzinfo=timezone.utc) if updated and updated.tzinfo is None else updated)
                if ts is None or ts.timestamp() <= cutoff:
                    changed.append(sid)
            if changed:
                conn.execute(update(Scan).where(Scan.id.in_(changed)).values(status="interrupted"))
        return changed

    def done_addresses(self, scan_id: int) -> set[str]:
        self.flush()
        with self.engine.connect() as conn:
            self._require(conn, scan_id)
            return set(conn.execute(select(Host.address).where(Host.scan_id == scan_id)).scalars())

    def add_audit(self, result: dict, scan_id: int | None = None) -> int:
        with self.engine.begin() as conn:
            r = conn.execute(insert(Audit).values(scan_id=scan_id, created=_now(), host=_str(result.get("host") or result.get("address")), data=_jsonable(result)))
            return int(r.inserted_primary_key[0])

    def add_plan(self, plan: dict, scan_id: int | None = None) -> int:
        with self.engine.begin() as conn:
            r = conn.execute(insert(Plan).values(scan_id=scan_id, created=_now(), data=_jsonable(plan)))
            return int(r.inserted_primary_key[0])

    def audits(self, scan_id: int | None = None) -> list[dict]:
        q = select(Audit.data).order_by(Audit.id)
        if scan_id is not None:
            q = q.where(Audit.scan_id == scan_id)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def audit_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Audit)).scalar_one()

    def plan_index(self) -> list[dict]:
        """Every stored plan's id, scan and time, oldest first, without the plan itself."""
        with self.engine.connect() as conn:
            return [{"id": i, "scan_id": s, "created": _iso(c)}
                    for i, s, c in conn.execute(select(Plan.id, Plan.scan_id, Plan.created).order_by(Plan.id))]

    def plan(self, plan_id: int) -> dict | None:
        with self.engine.connect() as conn:
            return conn.execute(select(Plan.data).where(Plan.id == plan_id)).scalar()

    def plans(self, scan_id: int | None = None) -> list[dict]:
        q = select(Plan.data).order_by(Plan.id)
        if scan_id is not None:
            q = q.where(Plan.scan_id == scan_id)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    # ---------------------------------------------------------------- reading
    def _require(self, conn, scan_id: int) -> None:
        if conn.execute(select(Scan.id).where(Scan.id == scan_id)).first() is None:
            raise StoreError(f"no scan {scan_id} in this database (smbsentry history lists them)")

    def scan(self, scan_id: int) -> dict:
        self.flush()
        with self.engine.connect() as conn:
            row = conn.execute(select(Scan).where(Scan.id == scan_id)).mappings().first()
        if row is None:
            raise StoreError(f"no scan {scan_id} in this database (smbsentry history lists them)")
        return _scan_dict(row)

    def scans(self, targets_key: str | None = None) -> list[dict]:
        """All scans, newest first (optionally only those of one target set)."""
        self.flush()
        q = select(Scan).order_by(Scan.id.desc())
        if targets_key is not None:
            q = q.where(Scan.targets_key == targets_key)
        with self.engine.connect() as conn:
            return [_scan_dict(r) for r in conn.execute(q).mappings()]

    def latest_scan(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(Scan.id))).scalar_one()

    def _host_filter(self, scan_id, finding, status, os, subnet, search, severity=None):
        conds = [Host.scan_id == scan_id]
        statuses = None
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
        if finding is not None or statuses is not None or severity is not None:
            # one uncorrelated subquery (the addresses with such a finding), not one lookup per host:
            # SQLite answers a correlated EXISTS on status alone through the (scan, finding, status)
            # index, reading the scan's every finding per host (50 s for 10,000 hosts)
            fconds = [FindingRow.scan_id == scan_id, FindingRow.status.in_(statuses or BAD)]
            if finding is not None:
                fconds.append(FindingRow.finding == finding)
            if severity is not None:
                fconds.append(FindingRow.severity == severity)
            conds.append(Host.address.in_(select(FindingRow.address).where(*fconds)))
        if os:
            conds.append(func.lower(Host.os_name).contains(os.lower(), autoescape=True))
        if subnet:
            lo, hi = _subnet_range(subnet)
            conds.append(Host.sort_key.between(lo, hi))
        if search:
            s = search.lower()
            conds.append(or_(*(func.lower(c).contains(s, autoescape=True)
                               for c in (Host.address, Host.hostname, Host.netbios_name, Host.netbios_domain, Host.dns_name, Host.os_name))))
        return conds

    def hosts(self, scan_id: int, finding: str | None = None, status: str | Iterable[str] | None = None,
              os: str | None = None, subnet: str | None = None, search: str | None = None,
              sort: str = "address", limit: int | None = 100, offset: int = 0, severity: str | None = None) -> list[dict]:
        """Host results of one scan (full host JSON), filtered and sorted.

        finding=ID keeps hosts with that finding in `status` (default vulnerable or likely);
        status alone keeps hosts with any finding in that status; severity keeps hosts with a
        finding of that severity in `status`; os and search are case-insensitive substrings
        (search: address, names, OS); subnet is a CIDR."""
        q = self._host_select(Host.data, scan_id, finding, status, os, subnet, search, severity, sort, limit, offset)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def host_addresses(self, scan_id: int, finding=None, status=None, os=None, subnet=None, search=None, severity=None,
                       sort: str = "address") -> list[str]:
        """The addresses `hosts` would return, all of them, without the host JSON (the dashboard
        pages and sorts ten thousand hosts by risk from these)."""
        q = self._host_select(Host.address, scan_id, finding, status, os, subnet, search, severity, sort, None, 0)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def hosts_at(self, scan_id: int, addresses: list[str]) -> list[dict]:
        """The host JSON of these addresses, in the order given (unknown addresses are left out)."""
        self.flush()
        found: dict[str, dict] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(addresses)), 500):
                found.update(conn.execute(select(Host.address, Host.data).where(Host.scan_id == scan_id,
                                                                                Host.address.in_(chunk))).all())
        return [found[a] for a in addresses if a in found]

    def _host_select(self, column, scan_id, finding, status, os, subnet, search, severity, sort, limit, offset):
        if sort not in SORTS:
            raise StoreError(f"bad sort {sort!r} (one of {', '.join(SORTS)})")
        self.flush()
        desc = sort.startswith("-")
        col = {"address": Host.sort_key, "name": func.coalesce(Host.netbios_name, Host.dns_name, Host.hostname, ""),
               "os": func.coalesce(Host.os_name, ""), "severity": Host.worst, "added": Host.id}[sort.lstrip("-")]
        order = [col.desc() if desc else col.asc(), Host.sort_key]
        if sort.lstrip("-") == "severity":  # most severe first by default
            order = [col.asc() if not desc else col.desc(), Host.sort_key]
        q = select(column).where(*self._host_filter(scan_id, finding, status, os, subnet, search, severity)).order_by(*order)
        if limit is not None:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)
        return q

    def count_hosts(self, scan_id: int, finding=None, status=None, os=None, subnet=None, search=None, severity=None) -> int:
        self.flush()
        q = select(func.count()).select_from(Host).where(*self._host_filter(scan_id, finding, status, os, subnet, search, severity))
        with self.engine.connect() as conn:
            return conn.execute(q).scalar_one()

    def findings(self, scan_id: int, status: Iterable[str] | None = None) -> list[dict]:
        """Finding rows of a scan: address, id, status, severity, title, port, evidence, reason, inferred, cves."""
        self.flush()
        q = select(FindingRow).where(FindingRow.scan_id == scan_id).order_by(FindingRow.finding, FindingRow.address)
        if status is not None:
            q = q.where(FindingRow.status.in_(list(status)))
        with self.engine.connect() as conn:
            out = []
            for f in conn.execute(q).mappings():
                out.append({"address": f["address"], "id": f["finding"], "status": f["status"], "severity": f["severity"],
                            "title": f["title"], "port": f["port"], "evidence": f["evidence"], "reason": f["reason"],
                            "inferred": bool(f["inferred"]), "cves": f["cves"] or []})
            return out

    def _smb_open(self):
        """SQL: the host's result has a port (139, 445) in state "open" (JSON read per dialect)."""
        if self.engine.dialect.name == "postgresql":
            return text("EXISTS (SELECT 1 FROM json_each_text(CASE WHEN json_typeof(hosts.data->'ports') = 'object' "
                        "THEN hosts.data->'ports' ELSE '{}'::json END) AS p WHERE p.value = 'open')")
        return text("EXISTS (SELECT 1 FROM json_each(hosts.data, '$.ports') AS p WHERE p.value = 'open')")

    def stats(self, scan_id: int) -> dict:
        """Counts for reports: hosts (all that answered), smb_hosts (SMB open; the SMBv1 and signing
        denominators), other_hosts (other services only), by OS, SMBv1 on, unsigned, bad findings by severity."""
        self.flush()
        with self.engine.connect() as conn:
            hosts = conn.execute(select(func.count()).select_from(Host).where(Host.scan_id == scan_id)).scalar_one()
            smb = conn.execute(select(func.count()).select_from(Host).where(Host.scan_id == scan_id, self._smb_open())).scalar_one()
            smb1 = conn.execute(select(func.count()).select_from(Host).where(Host.scan_id == scan_id, Host.smb1.is_(True))).scalar_one()
            unsigned = conn.execute(
                select(func.count(func.distinct(FindingRow.address))).where(
                    FindingRow.scan_id == scan_id, FindingRow.finding == "smb-signing-not-required", FindingRow.status == "vulnerable")
            ).scalar_one()
            by_os = conn.execute(
                select(Host.os_name, func.count()).where(Host.scan_id == scan_id).group_by(Host.os_name).order_by(func.count().desc())
            ).all()
            by_sev = dict(conn.execute(
                select(FindingRow.severity, func.count()).where(FindingRow.scan_id == scan_id, FindingRow.status.in_(BAD)).group_by(FindingRow.severity)
            ).all())
        return {"hosts": hosts, "smb_hosts": smb, "other_hosts": hosts - smb, "smb1": smb1, "unsigned": unsigned,
                "by_os": [(o, n) for o, n in by_os],
                "by_severity": [(s, by_sev.get(s, 0)) for s in SEVERITIES]}

    def trend(self, scan_id: int, limit: int = 20) -> list[dict]:
        """Earlier and this scan of the same target set, oldest first: id, started, hosts, exposed, findings."""
        me = self.scan(scan_id)
        rows = [s for s in self.scans(" ".join(sorted(me["targets"]))) if s["id"] <= scan_id][:limit]
        return list(reversed(rows))

    # ---------------------------------------------------------------- diff
    def diff(self, old_id: int, new_id: int) -> Diff:
        """What changed from scan old_id to scan new_id, like with like (store/diff.py)."""
        self.flush()
        old_meta, new_meta = dmod.describe(self.scan(old_id)), dmod.describe(self.scan(new_id))
        with self.engine.connect() as conn:
            def load(sid):
                rows = conn.execute(select(FindingRow.address, FindingRow.finding, FindingRow.port, FindingRow.status,
                                           FindingRow.severity, FindingRow.title).where(FindingRow.scan_id == sid))
                return {(a, f, p): (s, sev, t) for a, f, p, s, sev, t in rows}

            def hosts(sid):
                return {a: h for a, h in conn.execute(select(Host.address, Host.data).where(Host.scan_id == sid))}

            old_hosts, new_hosts = hosts(old_id), hosts(new_id)
            old, new = load(old_id), load(new_id)
        d = Diff(old_id, new_id, scans={"old": old_meta, "new": new_meta},
                 warnings=dmod.warnings(old_meta, new_meta, old_id, new_id))
        d.new_hosts = sorted(set(new_hosts) - set(old_hosts), key=sort_key)
        spans = dmod.target_spans(new_meta["targets"]) if any(w["code"] == "targets" for w in d.warnings) else None
        for address in sorted(set(old_hosts) - set(new_hosts), key=sort_key):
            (d.not_scanned_hosts if spans is not None and not dmod.covers(spans, address) else d.gone_hosts).append(address)
        d.identity_changes = dmod.identity_changes(old_hosts, new_hosts, sort_key)
        dmod.classify(d, old, new, set(new_hosts), new_meta, sort_key)
        return d


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _scan_dict(row) -> dict:
    return {"id": row["id"], "started": _iso(row["started"]), "finished": _iso(row["finished"]), "updated": _iso(row["updated"]),
            "status": row["status"], "targets": list(row["targets"] or []), "options": row["options"] or {},
            "hosts": row["hosts_count"], "exposed": row["exposed_count"], "findings": row["findings_count"]}


def _host_rows(scan_id: int, h: dict, added: datetime) -> tuple[dict, list[dict]]:
    address = str(h["address"])
    ident = h.get("identity") or {}
    smb1 = h.get("smb1") or {}
    smb2 = h.get("smb2") or {}
    findings = h.get("findings") or []
    worst = min((SEVERITIES.index(f.get("severity")) for f in findings
                 if f.get("status") in BAD and f.get("severity") in SEVERITIES), default=NO_SEVERITY)
    os_name = ident.get("os_name") or smb1.get("native_os")
    row = {
        "scan_id": scan_id, "address": address[:255], "sort_key": sort_key(address)[:300], "hostname": _str(h.get("hostname")),
        "netbios_name": _str(ident.get("netbios_name")), "netbios_domain": _str(ident.get("netbios_domain")),
        "dns_name": _str(ident.get("dns_name")), "os_name": _str(os_name),
        "smb1": bool(smb1.get("enabled")) if h.get("smb1") is not None else None,
        "signing": _str(smb2.get("signing") or smb1.get("signing"), 16), "worst": worst, "added": added, "data": h,
    }
    frows = [
        {"scan_id": scan_id, "address": address[:255], "finding": str(f.get("id"))[:64], "status": str(f.get("status"))[:16],
         "severity": str(f.get("severity"))[:16], "title": f.get("title"), "port": f.get("port"), "evidence": f.get("evidence"),
         "reason": f.get("reason"), "inferred": bool(f.get("inferred")), "cves": list(f.get("cves") or [])}
        for f in findings
    ]
    return row, frows
