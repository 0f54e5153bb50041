"""Store: scans, host results and findings in SQLite (default) or PostgreSQL.

    store = Store.open()                      # SMBSENTRY_DB or the user data dir
    sid = store.begin_scan(["10.0.0.0/24"], {"checks": "default"})
    store.add_host(sid, host.to_dict())       # batched, flushed at least every FLUSH_SECONDS
    store.finish_scan(sid, "finished")

add_host only queues: a background thread writes the queue when it holds
BATCH hosts or its oldest host is FLUSH_SECONDS old, and finish_scan / flush
/ close write the rest (buffer.py).  A host leaves the queue only once it is
committed; transient database errors are waited out for the retry window
(retry.py), after which the store fails with one line.  A killed scan
therefore loses at most the last second of hosts; its row says "running"
until finish_scan, and readers show it "interrupted" once its process is gone
(liveness.py).  Every public method fails with StoreError and one line.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import create_engine, delete, event, func, insert, or_, select, update, and_, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from ..model import SEVERITIES
from . import diff as dmod
from .diff import Diff
from . import liveness
from .buffer import WriteFailed, WriteBehind
from .models import Audit, FindingRow, Host, Plan, Scan
from .retry import cause, retrying, window_from_env

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
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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


def _one_line(method):
    """Database failures leave a Store method as StoreError with one line (no SQL, no parameters)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except WriteFailed as exc:
            raise StoreError(exc.message) from None
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {cause(exc)}") from None

    return wrapper


class Store:
    BATCH = 500
    FLUSH_SECONDS = 0.5

    def __init__(self, engine: Engine, retry_window: float | None = None) -> None:
        self.engine = engine
        self.retry_window = window_from_env() if retry_window is None else retry_window
        self._buffer = WriteBehind(self._write_batch, self._heartbeat, window=self.retry_window, batch=self.BATCH,
                                   flush_seconds=self.FLUSH_SECONDS, beat_seconds=liveness.HEARTBEAT)
        self._owned: set[int] = set()  # running scans this process began or resumed
        self._closed = False

    # ---------------------------------------------------------------- open / close
    @classmethod
    def open(cls, url: str | None = None, migrate: bool = True, retry_window: float | None = None) -> "Store":
        """Connect (and create or upgrade the schema); `retry_window` seconds of
        waiting out a database that went away (default SMBSENTRY_DB_RETRY or 60)."""
        full = resolve_url(url)
        try:
            parsed = make_url(full)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises ArgumentError and friends
            raise StoreError(f"bad database URL {url!r}: {exc}") from None
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            _create_private(parsed.database)
        else:
            kwargs["pool_pre_ping"] = True  # a restarted server: reconnect instead of failing once
            if parsed.get_backend_name() == "postgresql":
                kwargs["connect_args"] = {"connect_timeout": 10}  # a server that vanished: fail, then retry
        try:
            engine = create_engine(parsed, future=True, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"cannot use database {parsed.render_as_string(hide_password=True)}: {cause(exc)}") from None
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
            raise StoreError(f"cannot open database {parsed.render_as_string(hide_password=True)}: {cause(exc)}") from None
        return cls(engine, retry_window)

    def close(self) -> None:
        """Write what is pending (when the store still accepts writes) and disconnect."""
        if self._closed:
            return
        try:
            if self._buffer.failure is None:
                self.flush()
        finally:
            self._closed = True
            self._buffer.close()
            self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def committed(self) -> int:
        """Host results this process has written (committed) so far."""
        return self._buffer.committed

    @property
    def pending(self) -> int:
        """Host results queued and not yet committed."""
        return len(self._buffer)

    def _retry(self, fn):
        return retrying(fn, self.retry_window)

    # ---------------------------------------------------------------- writing a scan
    @_one_line
    def begin_scan(self, targets: Iterable[str] | str, options: dict | None = None) -> int:
        tlist = [targets] if isinstance(targets, str) else [str(t) for t in targets]
        opts = _jsonable({**(options or {}), "owner": liveness.me()})

        def write() -> int:
            now = _now()
            with self.engine.begin() as conn:
                result = conn.execute(
                    insert(Scan).values(
                        started=now, updated=now, status="running", targets=tlist,
                        targets_key=" ".join(sorted(tlist)), options=opts,
                        hosts_count=0, exposed_count=0, findings_count=0,
                    )
                )
                return int(result.inserted_primary_key[0])

        scan_id = self._retry(write)
        self._own(scan_id)
        return scan_id

    def _own(self, scan_id: int) -> None:
        self._owned.add(scan_id)
        self._buffer.beating = True
        self._buffer.start()

    def _disown(self, scan_id: int) -> None:
        self._owned.discard(scan_id)
        self._buffer.beating = bool(self._owned)

    def _heartbeat(self) -> None:
        """Touch `updated` of the scans this process runs (liveness.py)."""
        owned = list(self._owned)
        if owned:
            with self.engine.begin() as conn:
                conn.execute(update(Scan).where(Scan.id.in_(owned), Scan.status == "running").values(updated=_now()))

    @_one_line
    def add_host(self, scan_id: int, host: dict) -> None:
        """Queue one host result (the contract's JSON object, or a HostResult).

        A due batch is written here with one try; a database that went away
        is waited out by the store's own thread, never here.  Raises
        StoreError once the store has stopped accepting writes (buffer.py)."""
        if hasattr(host, "to_dict"):
            host = host.to_dict()
        self._buffer.add((scan_id, host, _now()))

    def add_hosts(self, scan_id: int, hosts: Iterable[dict]) -> None:
        for h in hosts:
            self.add_host(scan_id, h)

    @_one_line
    def flush(self) -> int:
        """Write every queued host now (waiting out a database that went away,
        up to the retry window); returns how many."""
        return self._buffer.flush()

    def _write_batch(self, batch: list[tuple[int, dict, datetime]]) -> None:
        """One transaction: the hosts (a re-scanned host replaces its row), their findings, the counts."""
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

    def _recount(self, conn, scan_id: int) -> None:
        hosts = conn.execute(select(func.count()).select_from(Host).where(Host.scan_id == scan_id)).scalar_one()
        exposed = conn.execute(
            select(func.count(func.distinct(FindingRow.address))).where(FindingRow.scan_id == scan_id, FindingRow.status.in_(BAD))
        ).scalar_one()
        nbad = conn.execute(
            select(func.count()).select_from(FindingRow).where(FindingRow.scan_id == scan_id, FindingRow.status.in_(BAD))
        ).scalar_one()
        conn.execute(update(Scan).where(Scan.id == scan_id).values(hosts_count=hosts, exposed_count=exposed, findings_count=nbad))

    @_one_line
    def finish_scan(self, scan_id: int, status: str = "finished") -> None:
        """Write what is pending and set the final status ("interrupted": `--resume` may complete it)."""
        if status not in SCAN_STATUSES:
            raise StoreError(f"bad scan status {status!r} (one of {', '.join(SCAN_STATUSES)})")
        self.flush()

        def write() -> None:
            with self.engine.begin() as conn:
                self._require(conn, scan_id)
                self._recount(conn, scan_id)
                conn.execute(update(Scan).where(Scan.id == scan_id).values(status=status, finished=_now(), updated=_now()))

        self._retry(write)
        self._disown(scan_id)

    @_one_line
    def resume_scan(self, scan_id: int) -> set[str]:
        """Take over an earlier scan: mark it running (owned by this process) and
        return the addresses it already has.  A scan still running in a live
        process is refused with StoreError, also when two resumes race."""

        def write() -> None:
            with self.engine.begin() as conn:
                row = conn.execute(select(Scan.status, Scan.options, Scan.updated).where(Scan.id == scan_id)).first()
                if row is None:
                    raise StoreError(f"no scan {scan_id} in this database (smbsentry history lists them)")
                status, options, updated = row
                owner = (options or {}).get("owner")
                if status == "running" and not liveness.stale(owner, updated):
                    raise StoreError(f"scan {scan_id} is still running ({_owner_text(owner)}): "
                                     "wait for it to end, or stop it first")
                cond = [Scan.id == scan_id, Scan.status == status]
                if updated is not None:
                    cond.append(Scan.updated <= updated)  # nobody took it over since we read it
                taken = conn.execute(update(Scan).where(*cond).values(
                    status="running", finished=None, updated=_now(),
                    options=_jsonable({**(options or {}), "owner": liveness.me()})))
                if taken.rowcount != 1:
                    raise StoreError(f"scan {scan_id} was just resumed by another process")

        self._retry(write)
        self._own(scan_id)
        return self.done_addresses(scan_id)

    @_one_line
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

    def _settle_stale(self, conn, rows: list) -> list:
        """Running scans whose process is gone (liveness.py) are recorded and shown as interrupted."""
        out = []
        for row in rows:
            row = dict(row)
            if row["status"] == "running" and row["id"] not in self._owned and \
                    liveness.stale((row["options"] or {}).get("owner"), row["updated"]):
                cond = [Scan.id == row["id"], Scan.status == "running"]
                if row["updated"] is not None:
                    cond.append(Scan.updated <= row["updated"])
                conn.execute(update(Scan).where(*cond).values(status="interrupted"))
                row["status"] = "interrupted"
            out.append(row)
        return out

    @_one_line
    def done_addresses(self, scan_id: int) -> set[str]:
        self.flush()
        with self.engine.connect() as conn:
            self._require(conn, scan_id)
            return set(conn.execute(select(Host.address).where(Host.scan_id == scan_id)).scalars())

    @_one_line
    def add_audit(self, result: dict, scan_id: int | None = None) -> int:
        values = dict(scan_id=scan_id, host=_str(result.get("host") or result.get("address")), data=_jsonable(result))

        def write() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(insert(Audit).values(created=_now(), **values)).inserted_primary_key[0])

        return self._retry(write)

    @_one_line
    def add_plan(self, plan: dict, scan_id: int | None = None) -> int:
        data = _jsonable(plan)

        def write() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(insert(Plan).values(scan_id=scan_id, created=_now(), data=data)).inserted_primary_key[0])

        return self._retry(write)

    @_one_line
    def audits(self, scan_id: int | None = None) -> list[dict]:
        q = select(Audit.data).order_by(Audit.id)
        if scan_id is not None:
            q = q.where(Audit.scan_id == scan_id)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    @_one_line
    def audit_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Audit)).scalar_one()

    @_one_line
    def plan_index(self) -> list[dict]:
        """Every stored plan's id, scan and time, oldest first, without the plan itself."""
        with self.engine.connect() as conn:
            return [{"id": i, "scan_id": s, "created": _iso(c)}
                    for i, s, c in conn.execute(select(Plan.id, Plan.scan_id, Plan.created).order_by(Plan.id))]

    @_one_line
    def plan(self, plan_id: int) -> dict | None:
        with self.engine.connect() as conn:
            return conn.execute(select(Plan.data).where(Plan.id == plan_id)).scalar()

    @_one_line
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

    @_one_line
    def scan(self, scan_id: int) -> dict:
        self.flush()
        with self.engine.begin() as conn:
            row = conn.execute(select(Scan).where(Scan.id == scan_id)).mappings().first()
            if row is None:
                raise StoreError(f"no scan {scan_id} in this database (smbsentry history lists them)")
            return _scan_dict(self._settle_stale(conn, [row])[0])

    @_one_line
    def scans(self, targets_key: str | None = None) -> list[dict]:
        """All scans, newest first (optionally only those of one target set)."""
        self.flush()
        q = select(Scan).order_by(Scan.id.desc())
        if targets_key is not None:
            q = q.where(Scan.targets_key == targets_key)
        with self.engine.begin() as conn:
            return [_scan_dict(r) for r in self._settle_stale(conn, list(conn.execute(q).mappings()))]

    @_one_line
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

    @_one_line
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

    @_one_line
    def host_addresses(self, scan_id: int, finding=None, status=None, os=None, subnet=None, search=None, severity=None,
                       sort: str = "address") -> list[str]:
        """The addresses `hosts` would return, all of them, without the host JSON (the dashboard
        pages and sorts ten thousand hosts by risk from these)."""
        q = self._host_select(Host.address, scan_id, finding, status, os, subnet, search, severity, sort, None, 0)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    @_one_line
    def host_page(self, scan_id: int, after: int = 0, limit: int = 1000) -> list[tuple[int, dict]]:
        """(row id, host JSON) of the scan's hosts stored after row `after`, in stored order: the way to
        read every host a page at a time (each page costs the same; OFFSET re-reads the pages before)."""
        self.flush()
        q = select(Host.id, Host.data).where(Host.scan_id == scan_id, Host.id > after).order_by(Host.id).limit(limit)
        with self.engine.connect() as conn:
            return [(i, d) for i, d in conn.execute(q)]

    @_one_line
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

    @_one_line
    def count_hosts(self, scan_id: int, finding=None, status=None, os=None, subnet=None, search=None, severity=None) -> int:
        self.flush()
        q = select(func.count()).select_from(Host).where(*self._host_filter(scan_id, finding, status, os, subnet, search, severity))
        with self.engine.connect() as conn:
            return conn.execute(q).scalar_one()

    @_one_line
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

    @_one_line
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

    @_one_line
    def trend(self, scan_id: int, limit: int = 20) -> list[dict]:
        """Earlier and this scan of the same target set, oldest first: id, started, hosts, exposed, findings."""
        me = self.scan(scan_id)
        rows = [s for s in self.scans(" ".join(sorted(me["targets"]))) if s["id"] <= scan_id][:limit]
        return list(reversed(rows))

    # ---------------------------------------------------------------- diff
    @_one_line
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


def _create_private(path: str | None) -> None:
    """A new SQLite store is created readable by its owner only (0600; SQLite gives its -wal and -shm files
    the same mode): it holds every finding and the dashboard's users and sessions."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it exists (its mode is left alone), or the directory is missing: SQLite says so itself
        pass


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _owner_text(owner) -> str:
    if not isinstance(owner, dict):
        return "by another process"
    return f"process {owner.get('pid')} on {owner.get('host')}"


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _scan_dict(row) -> dict:
    options = dict(row["options"] or {})
    owner = options.pop("owner", None)  # kept beside the options (liveness.py), not one of them
    return {"id": row["id"], "started": _iso(row["started"]), "finished": _iso(row["finished"]), "updated": _iso(row["updated"]),
            "status": row["status"], "targets": list(row["targets"] or []), "options": options, "owner": owner,
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
