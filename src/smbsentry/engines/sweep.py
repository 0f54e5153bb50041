"""Discovery through the engines: each engine sweeps shard i of n of one permutation, inside its --allow.

The central side never lists the addresses of a range: it sends each engine
a job whose "sweep" field says what to walk, and the engine derives the rest.

    blocks, excludes   the IPv4 ranges of the scan as integer intervals, excludes cut (discover/permute.py)
    seed               the permutation's seed: every engine of the scan walks the same order
    index, count       shard i of n of that walk (`Permutation.shard`: disjoint, together complete)
    only               the part of the ranges the job's queue is routed (routes.py `Router.split`)
    mode, retries      --discovery (auto | syn | connect) and --retries

The engine probes the addresses of its shard that are in `only` and inside
its --allow (syn where it may open raw sockets, connect otherwise: the mode
line goes back in its `done`), hands every confirmed host to its scan engine
at once (a Feed, as a local scan does), and counts the addresses of its
shard in `only` but outside its --allow: those are reported back as not
covered, never dropped in silence.  Over the n shards of a queue, every
routed address is thus probed once or reported once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from ..discover import stage
from ..discover.permute import AddressSpace

MAX_INTERVALS = 65_536  # intervals a job may carry in each of blocks, excludes, only
SAMPLE = 5  # not-covered ranges named in a reply


class SweepError(ValueError):
    """A sweep field that is not one: the job is refused as malformed."""


def _intervals(value: object, name: str) -> list[tuple[int, int]]:
    if not isinstance(value, list) or len(value) > MAX_INTERVALS:
        raise SweepError(f"sweep field {name!r} is not a list of at most {MAX_INTERVALS} intervals")
    out = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or not all(type(x) is int for x in item)
                or not 0 <= item[0] <= item[1] < 2 ** 32):
            raise SweepError(f"sweep field {name!r} holds a bad interval")
        out.append((item[0], item[1]))
    return out


@dataclass
class SweepPlan:
    space: AddressSpace  # the scan's ranges, excludes cut: what the permutation walks
    cover: AddressSpace  # the job's queue's share inside this engine's --allow: what is probed
    outside: AddressSpace  # the queue's share outside --allow: reported as not covered
    index: int
    count: int
    seed: int
    mode: str
    retries: int

    def request(self, **fields) -> stage.Request:
        return stage.Request(self.space, shard=(self.index, self.count), seed=self.seed, cover=self.cover,
                             retries=self.retries, **fields)

    def not_covered(self) -> tuple[int, list[str]]:
        """(addresses of this shard outside --allow, the first such ranges): a walk of the shard, done
        only when some of the queue's share lies outside --allow (a misconfiguration, said at once)."""
        if not self.outside.count:
            return 0, []
        walk = stage.Request(self.space, (), shard=(self.index, self.count), seed=self.seed, cover=self.outside)
        count = sum(1 for _ in walk.addresses(walk.permutation()))
        cut = AddressSpace(zip(self.outside.starts, self.outside.ends), _gaps(self.space))
        ranges = [f"{_ntoa(lo)}-{_ntoa(hi)}" for lo, hi in list(zip(cut.starts, cut.ends))[:SAMPLE]]
        return count, ranges


def plan(sweep: object, allowed: list) -> SweepPlan:
    """The sweep a job asks for, checked and cut to this engine's --allow; SweepError when malformed."""
    if not isinstance(sweep, dict):
        raise SweepError("sweep field is not an object")
    blocks, excludes, only = (_intervals(sweep.get(k), k) for k in ("blocks", "excludes", "only"))
    index, count, seed = sweep.get("index"), sweep.get("count"), sweep.get("seed")
    if not all(type(x) is int for x in (index, count, seed)) or not 0 <= index < count <= 4096 or seed < 0:
        raise SweepError("sweep fields index, count, seed: expected 0 <= index < count <= 4096 and a seed")
    mode, retries = sweep.get("mode"), sweep.get("retries", 0)
    if mode not in stage.MODES or type(retries) is not int or not 0 <= retries <= 10:
        raise SweepError("sweep fields mode (auto | syn | connect) or retries (0..10) bad")
    mine = [(int(n.network_address), int(n.broadcast_address)) for n in allowed
            if isinstance(n, ipaddress.IPv4Network)]
    outside = AddressSpace(only, mine)
    cover = AddressSpace(only, zip(outside.starts, outside.ends))
    return SweepPlan(AddressSpace(blocks, excludes), cover, outside, index, count, seed, mode, retries)


def _gaps(space: AddressSpace) -> list[tuple[int, int]]:
    """The addresses not in `space` (its complement), so that a set can be cut to it."""
    out, cur = [], 0
    for lo, hi in zip(space.starts, space.ends):
        if lo > cur:
            out.append((cur, lo - 1))
        cur = hi + 1
    if cur <= 2 ** 32 - 1:
        out.append((cur, 2 ** 32 - 1))
    return out


def _ntoa(n: int) -> str:
    return socket.inet_ntoa(n.to_bytes(4, "big"))


async def run(sweep_plan: SweepPlan, options, *, concurrency: int, rate: float | None,
              on_result: Callable[[object], None]) -> tuple[object, dict]:
    """Sweep the shard and assess each confirmed host while the sweep goes on: (engine summary, what the
    `done` reply says of the sweep)."""
    from ..discover.run import run as discover
    from ..scan.engine import Engine, Feed
    from ..discover.targets import Target

    not_covered, ranges = sweep_plan.not_covered()
    said = {"sweep": {"index": sweep_plan.index, "count": sweep_plan.count},
            "not_covered": not_covered, "not_covered_ranges": ranges}
    engine = Engine(options, concurrency=concurrency, rate=rate, on_result=on_result)
    if not sweep_plan.cover.count:
        said["discovery"] = {"mode": "none", "addresses": 0, "confirmed": 0,
                             "mode_line": "discovery: nothing of this shard inside this engine's --allow"}
        return await engine.run(iter(())), said
    feed = Feed(high_water=max(64, engine.concurrency * 2))
    request = sweep_plan.request(smb_ports=tuple(options.ports),
                                 service_ports=tuple(sorted(p for p in options.service_ports if p != 137)),
                                 rate=rate or stage.DEFAULT_RATE, timeout=options.timeout,
                                 concurrency=engine.concurrency, backlog=feed.backlog)
    # on an engine, syn means "syn where this engine may": the central side cannot know; the line says which ran
    mode = "connect" if sweep_plan.mode == "connect" else "auto"
    assessing = asyncio.ensure_future(engine.run(feed))
    try:
        stats = await discover(request, mode, lambda address: feed.put(Target(address)))
    except BaseException:
        feed.close()
        assessing.cancel()
        await asyncio.gather(assessing, return_exceptions=True)
        raise
    feed.close()
    summary = await assessing
    said["discovery"] = {"mode": stats.mode, "addresses": stats.addresses, "confirmed": stats.confirmed,
                         "answered": stats.answered, "sent": stats.sent, "mode_line": stats.mode_line(),
                         "summary_line": stats.summary_line()}
    return summary, said
