"""Each host planned as the scan reports it, so that less is left to do after the scan.

respond's writer is a child forked before the scan, at a lower priority
(app/forks.py): while the scan runs it uses what the cores leave idle. It
reads the records as they are written (app/follow.py) and plans every host
there, in every report language, with its share of the HTML report's tables:

    ahead = PlanAhead(follower, ("en", "zh"))
    Deferred.start(warm, run, idle=ahead.idle)        # during the scan
    plan([], lang, views=views, ready=ahead.ready(lang))   # after it

A plan made ahead is only a candidate: the planner takes it for a host whose
final view (inventories, recorded SMB1 traffic and every record of the host
merged) equals the view it was made from, on the same day, and plans the
host again otherwise. So the result is the plan that planning everything
after the scan gives, whatever was read ahead.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from .follow import ScanFollower

BATCH = 8  # hosts planned per step: a few milliseconds, so the writer takes its message without delay


class PlanAhead:
    def __init__(self, follower: ScanFollower, langs: tuple[str, ...], enabled: bool = True):
        """`langs` in the order their work matters: the first is the language the main report and the plan folder
        are written in (on the critical path after the scan); the others' child has time to spare. `enabled`
        False: only read (respond with inventories, whose audits change most hosts' views)."""
        self.follower, self.langs, self.enabled = follower, langs, enabled
        self._ready: dict[str, dict[str, tuple[Any, date, Any, list]]] = {lang: {} for lang in langs}
        self._pieces: dict[str, dict[str, tuple[dict, Any]]] = {lang: {} for lang in langs}
        self._done = {lang: 0 for lang in langs}  # follower.records[:n] are planned in that language
        self._views: list = []  # collect_hosts([record]) of each record read, made once for every language
        # the SMB1 traffic records `detect --store` kept (respond reads them before the scan ends): they join each
        # host's view as they will after the scan, so views with SMB1 clients or captures still match
        self.usage: list[dict] = []

    def idle(self) -> bool:
        """A little of the work, most urgent first: plan a few hosts read earlier in the first language, read what
        the scan wrote since, or plan a few in another language; whether there may be more to do now (Deferred
        calls it again at once, and reads its message in between)."""
        first, *others = self.langs
        if self._step(first):
            return True
        if self.follower.poll():  # reading comes before the other languages: the first one's work waits on it
            return True
        return any(self._step(lang) for lang in others)

    def _step(self, lang: str) -> bool:
        """Plan the next few hosts read in `lang`; False when it is caught up (or planning is off)."""
        records, n = self.follower.records, self._done[lang]
        if not self.enabled or n >= len(records):
            return False
        self._done[lang] = min(n + BATCH, len(records))
        self._plan(lang, [(records[i], self._view(i)) for i in range(n, self._done[lang])])
        return True

    def add(self, records: list[dict]) -> None:
        """Plan the hosts of these scan records in every language (one view each, as if each were the host's
        only record)."""
        made = [(rec, _views(rec, self.usage)) for rec in records]
        for lang in self.langs:
            self._plan(lang, made)

    def _plan(self, lang: str, made: list[tuple[dict, list]]) -> None:
        """Plan (record, its views) pairs in `lang`: each view's plan and action rows, each record's page pieces."""
        from ..remediate.actions import host_rows
        from ..remediate.planner import plan_host
        from ..report import view

        today = date.today()
        for rec, views in made:
            for v in views:
                hp = plan_host(v, lang, today)
                self._ready[lang][v.key] = (v, today, hp, host_rows(v, hp))
            if rec.get("address"):
                self._pieces[lang][rec["address"]] = (rec, view.pieces(rec, lang))

    def _view(self, i: int) -> list:
        """The views of follower.records[i], made once for every language."""
        records = self.follower.records
        while len(self._views) <= i:
            self._views.append(_views(records[len(self._views)], self.usage))
        return self._views[i]

    def pieces(self, lang: str) -> dict[str, tuple[dict, Any]]:
        """address -> (the record, its report.view.Pieces in `lang`), for the HTML report (html.render pieces=)."""
        return self._pieces.get(lang, {})

    def ready(self, lang: str) -> dict[str, tuple[Any, date, Any, list]]:
        """key -> (the view planned, the day, the plan, its action rows), for planner.plan(ready=)."""
        return self._ready.get(lang, {})


def _views(rec: dict, usage: list[dict]) -> list:
    """The record's host view, as if it were the host's only record (with the SMB1 traffic records); none for a
    record the planner refuses (it says why after the scan, with the rest)."""
    from ..remediate.hosts import collect_hosts

    try:
        return collect_hosts([rec, *usage])[:1]
    except ValueError:
        return []
