"""What the dashboard's pages need from a whole scan, made once per scan and language and cached.

    cache = Digests(store)
    d = cache.get(scan_id, "zh")      # in a worker thread: the first call of a scan plans it
    d.actions                         # the ranked action list (remediate.actions.ActionRow)
    d.risk["10.0.0.5"]                # that host's place in it: order, best rank, isolate, untested
    d.audits["10.0.0.5"]              # the inventories audit/join.py joins to that host

Planning ten thousand hosts takes seconds, so no page plans a whole scan per
request: the digest is made on the first view of a scan in a language and
kept while the scan, the store's audits and its SMB1 usage runs stay as they
were (a running scan's is remade at most every REFRESH seconds).  One
request builds it; others asking for the same key meanwhile wait for it.

The planner gets what the scan's hosts are known by: their records, the
stored inventories audit/join.py joins to them (address, DNS name, NetBIOS
name with its domain, a bare name only when unique; never a name several
hosts share) and the SMBv1 usage `detect --store` recorded.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..audit.join import match
from ..kb.findings import meta
from ..report.view import make_plan, smb_open
from ..resultfile import slim, usage_records_in, usage_runs

READ = 1000
BAD = ("vulnerable", "likely")
REFRESH = 15.0
MAX_DIGESTS = 8
NO_ROW = 1 << 30
DECIDED = ("vulnerable", "likely", "not_vulnerable")


@dataclass
class HostRisk:
    order: int = NO_ROW  # the position of the host's first row in the ranked list
    rank: int | None = None  # its best rank, 1 (isolate now) .. 5 (verify)
    categories: list[str] = field(default_factory=list)
    untested: bool = False
    smb: bool = True

    @property
    def isolate(self) -> bool:
        return self.rank == 1

    @property
    def state(self) -> str:
        """isolate-now | vulnerable | likely | hardening | verify | untested | clean | other-only."""
        if self.rank == 1:
            return "isolate-now"
        if self.untested:
            return "untested"
        if self.categories:
            return self.categories[0]
        return "clean" if self.smb else "other-only"


@dataclass
class Digest:
    scan_id: int
    lang: str
    stamp: tuple
    made: float
    actions: list
    risk: dict[str, HostRisk]
    audits: dict[str, list[dict]]
    usage: dict[str, list[dict]]  # address -> the SMB1 usage records of that server
    coverage: list[dict]  # every usage run: {"captures": [...], "span": [first, last]}
    plan_error: str | None = None
    finding_ids: list[str] = field(default_factory=list)  # every finding id of the scan (the hosts page's filter)
    bad_hosts: dict[str, int] = field(default_factory=dict)  # finding id -> hosts where it is vulnerable or likely
    stats: dict = field(default_factory=dict)  # store.stats: the counts and their denominators (0.2 s of SQL per 10,000 hosts)
    briefs: dict[str, dict] = field(default_factory=dict)  # address -> what a host list's row shows (brief())

    def risk_of(self, address: str) -> HostRisk:
        return self.risk.get(address) or HostRisk()

    def risk_key(self, address: str) -> tuple[int, int]:
        """Sort key: isolate first, then the ranked list's order; hosts without work after, untested first."""
        r = self.risk_of(address)
        return r.order, (0 if r.untested else 1 if r.smb else 2)


def untested(h: dict) -> bool:
    """SMB open but nothing learned: every check unknown (or none ran), or errors and no identity.
    Such a host is "not known to be safe", never shown like a clean one."""
    if not smb_open(h):
        return False
    if not any(f.get("status") in DECIDED for f in h.get("findings") or []):
        return True
    ident = h.get("identity") or {}
    known = ident.get("netbios_name") or ident.get("dns_name") or ident.get("os_name") or (h.get("smb1") or {}).get("native_os")
    return bool(h.get("errors")) and not known


def _risk(actions: list, hosts: list[dict]) -> dict[str, HostRisk]:
    out: dict[str, HostRisk] = {}
    for h in hosts:
        out[str(h["address"])] = HostRisk(untested=untested(h), smb=smb_open(h))
    for i, row in enumerate(actions):
        r = out.get(str(row.address))
        if r is None:
            continue
        if r.order == NO_ROW:
            r.order = i
        r.rank = row.rank if r.rank is None else min(r.rank, row.rank)
        if row.category not in r.categories:
            r.categories.append(row.category)
        if row.step == "verify" and row.step_text_key == "verify-untested":
            r.untested = True
    return out


def _usage(records: list[dict]) -> tuple[dict[str, list[dict]], list[dict]]:
    by_addr: dict[str, list[dict]] = {}
    coverage: list[dict] = []
    for rec in records:
        u = rec.get("smb1_usage") if isinstance(rec.get("smb1_usage"), dict) else {}
        cov = {"captures": [str(c) for c in (u.get("captures") or [])[:20]], "span": list(u.get("span") or [None, None])[:2]}
        if cov not in coverage:
            coverage.append(cov)
        by_addr.setdefault(str(rec.get("address")), []).append(rec)
    return by_addr, coverage


def _records(store, scan_id: int) -> list[dict]:
    """The scan's host records a page at a time, each kept to what the planner and the join read
    (resultfile.slim): ten thousand full records are never in memory at once.  In stored order, so
    that a running scan's new hosts come after the pages already read, never between them."""
    out: list[dict] = []
    after = 0
    while True:
        page = store.host_page(scan_id, after, READ)
        out += [slim(h) for _, h in page]
        if len(page) < READ:
            return out
        after = page[-1][0]


def _severity(fid) -> str | None:
    try:
        return meta(str(fid))["severity"]
    except KeyError:
        return None


def brief(h: dict) -> dict:
    """What a row of a host list shows (views.summary reads it like a record): the CSV of ten thousand
    hosts is made from these, without decoding every stored record again (1.5 s of JSON)."""
    ident = h.get("identity") or {}
    return {"address": h.get("address"), "hostname": h.get("hostname"),
            "identity": {k: ident[k] for k in ("netbios_name", "dns_name", "os_name") if ident.get(k)},
            "smb1": {"native_os": (h.get("smb1") or {}).get("native_os")},
            "role": {"value": (h.get("role") or {}).get("value")},
            "findings": [{"id": f.get("id"), "status": f.get("status"), "severity": _severity(f.get("id"))}
                         for f in h.get("findings") or () if isinstance(f, dict) and f.get("status") in BAD]}


def _finding_counts(hosts: list[dict]) -> tuple[list[str], dict[str, int]]:
    """Every finding id of the scan, and per id the hosts where it is vulnerable or likely."""
    ids: set[str] = set()
    bad: dict[str, int] = {}
    for h in hosts:
        mine: set[str] = set()
        for f in h.get("findings") or []:
            if isinstance(f, dict):
                ids.add(str(f.get("id")))
                if f.get("status") in BAD:
                    mine.add(str(f.get("id")))
        for fid in mine:
            bad[fid] = bad.get(fid, 0) + 1
    return sorted(ids), bad


def build(store, scan_id: int, lang: str, stamp: tuple = ()) -> Digest:
    hosts = _records(store, scan_id)
    audits = store.audits()
    joined = match(hosts, audits)  # {audit index: host index}
    by_host: dict[str, list[dict]] = {}
    for j, i in sorted(joined.items()):
        by_host.setdefault(str(hosts[i]["address"]), []).append(audits[j])
    usage = usage_records_in(store)
    errors: list[str] = []
    plan = make_plan(hosts + [audits[j] for j in sorted(joined)] + usage, lang, errors) if hosts else None
    actions = list(plan.actions) if plan is not None else []
    del plan  # the per-host plans and scripts of ten thousand hosts: only the ranked rows are kept
    by_usage, coverage = _usage(usage)
    ids, bad = _finding_counts(hosts)
    return Digest(scan_id, lang, stamp, time.monotonic(), actions, _risk(actions, hosts), by_host, by_usage, coverage,
                  errors[0] if errors else None, ids, bad, store.stats(scan_id), {str(h.get("address")): brief(h) for h in hosts})


class Digests:
    """The per-scan cache (see the module's docstring); thread-safe."""

    def __init__(self, store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}
        self._done: dict[tuple, Digest] = {}

    def stamp(self, scan_id: int) -> tuple:
        scans = self.store.scans()
        me = next((s for s in scans if s["id"] == scan_id), {})
        runs = tuple((s["id"], s["updated"]) for s in usage_runs(scans))
        return me.get("updated"), me.get("hosts"), me.get("status"), self.store.audit_count(), runs

    def _fresh(self, d: Digest | None, stamp: tuple) -> bool:
        if d is None:
            return False
        if d.stamp == stamp:
            return True
        # a running scan changes every half second: keep its digest a little while
        return stamp[2] == "running" and d.stamp[2] == "running" and time.monotonic() - d.made < REFRESH

    def get(self, scan_id: int, lang: str) -> Digest:
        key = (scan_id, lang)
        stamp = self.stamp(scan_id)
        with self._lock:
            d = self._done.get(key)
            if self._fresh(d, stamp):
                return d  # type: ignore[return-value]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                d = self._done.get(key)
                if self._fresh(d, stamp):
                    return d  # type: ignore[return-value]
            d = build(self.store, scan_id, lang, stamp)
            with self._lock:
                self._done[key] = d
                while len(self._done) > MAX_DIGESTS:
                    self._done.pop(next(iter(self._done)))
            return d
