"""Which engine queue owns which addresses, and cutting targets into shards.

A routes file maps a queue to the CIDRs its engine serves, in YAML (the
simple subset below) or JSON:

    seg1:
      - 10.1.0.0/16
      - 10.9.8.0/24
    seg2: [10.2.0.0/16]

The most specific CIDR wins; addresses no route covers go to the default
queue (--queue) or are reported as unrouted.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..discover.targets import Target

_QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class RouteError(ValueError):
    pass


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_routes_text(text: str, name: str = "routes") -> dict[str, list[str]]:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise RouteError(f"{name}: bad JSON: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise RouteError(f"{name}: expected an object of queue -> list of CIDRs")
        return {str(k): [str(c) for c in v] for k, v in data.items()}
    routes: dict[str, list[str]] = {}
    current: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        if line.lstrip().startswith("- "):
            if current is None or line[0] not in " \t-":
                raise RouteError(f"{where}: list item outside a queue")
            routes[current].append(_unquote(line.lstrip()[2:]))
            continue
        if line[0] in " \t" or ":" not in line:
            raise RouteError(f"{where}: expected 'queue:' or '- CIDR'")
        key, _, rest = line.partition(":")
        # a queue name may itself contain ':' only when quoted; keep it simple
        current = _unquote(key)
        routes.setdefault(current, [])
        rest = rest.strip()
        if rest.startswith("[") and rest.endswith("]"):
            routes[current] += [_unquote(x) for x in rest[1:-1].split(",") if x.strip()]
        elif rest:
            routes[current].append(_unquote(rest))
    return routes


def load_routes(path: str | Path) -> dict[str, list[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RouteError(f"cannot read routes file {path}: {exc.strerror}") from None
    return parse_routes_text(text, str(path))


def parse_networks(cidrs: Iterable[str], where: str = "") -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for c in cidrs:
        try:
            nets.append(ipaddress.ip_network(str(c).strip(), strict=False))
        except ValueError:
            raise RouteError(f"{where}bad CIDR {c!r}") from None
    return nets


class Router:
    def __init__(self, routes: dict[str, list[str]] | None = None, default: str | None = None) -> None:
        self.routes = {k: list(v) for k, v in (routes or {}).items()}
        self.default = default
        for q in list(self.routes) + ([default] if default else []):
            if not _QUEUE_RE.match(q):
                raise RouteError(f"bad queue name {q!r}")
        entries = []
        for queue, cidrs in self.routes.items():
            for net in parse_networks(cidrs, f"queue {queue}: "):
                entries.append((net.prefixlen, net.version, int(net.network_address), int(net.broadcast_address), queue))
        entries.sort(key=lambda e: -e[0])
        self._entries = entries
        if not entries and not default:
            raise RouteError("no queue: give --queue or a routes file")

    @property
    def queues(self) -> list[str]:
        return sorted(set(self.routes) | ({self.default} if self.default else set()))

    def queue_for(self, address: str) -> str | None:
        a = ipaddress.ip_address(address.split("%", 1)[0])
        n = int(a)
        for _plen, version, lo, hi, queue in self._entries:
            if version == a.version and lo <= n <= hi:
                return queue
        return self.default

    def split(self, intervals: Iterable[tuple[int, int]]) -> dict[str | None, list[tuple[int, int]]]:
        """IPv4 intervals cut by queue, exactly as `queue_for` routes each address (the most specific
        CIDR wins); key None: what no route covers.  A range is never walked address by address:
        it is cut at the routes' edges, so a /8 costs as many pieces as there are routes."""
        edges = sorted({e for _plen, version, lo, hi, _q in self._entries if version == 4 for e in (lo, hi + 1)})
        out: dict[str | None, list[tuple[int, int]]] = {}
        for lo, hi in intervals:
            cuts = [lo] + [e for e in edges[bisect_right(edges, lo):bisect_right(edges, hi)]] + [hi + 1]
            for a, b in zip(cuts, cuts[1:]):
                pieces = out.setdefault(self._queue4(a), [])
                if pieces and pieces[-1][1] + 1 == a:
                    pieces[-1] = (pieces[-1][0], b - 1)
                else:
                    pieces.append((a, b - 1))
        return out

    def _queue4(self, n: int) -> str | None:
        for _plen, version, lo, hi, queue in self._entries:
            if version == 4 and lo <= n <= hi:
                return queue
        return self.default


@dataclass(slots=True)
class Shard:
    id: int
    queue: str
    targets: list[str] = field(default_factory=list)
    # a discovery shard (engines/sweep.py): the job's "sweep" field; its addresses are walked by the engine
    sweep: dict | None = None


@dataclass(slots=True)
class Sharding:
    unrouted: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    targets: int = 0


def _resolve(name: str) -> str | None:
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return infos[0][4][0] if infos else None


def shards(targets: Iterable[Target], router: Router, size: int = 256, stats: Sharding | None = None,
           skip: set[str] | None = None) -> Iterator[Shard]:
    """Lazily cut targets into shards of at most `size` addresses of one /24 (IPv6: one /120) and one queue.

    Host names are resolved here, on the central side, so they can be routed."""
    if size < 1:
        raise ValueError("shard size must be at least 1")
    stats = stats if stats is not None else Sharding()
    next_id = 0
    current: Shard | None = None
    current_key = None
    for t in targets:
        address = t.address
        if address is None:
            address = _resolve(t.hostname or "")
            if address is None:
                stats.unresolved.append(t.hostname or "")
                continue
        if skip and address in skip:
            continue
        stats.targets += 1
        queue = router.queue_for(address)
        if queue is None:
            stats.unrouted.append(address)
            continue
        a = ipaddress.ip_address(address.split("%", 1)[0])
        key = (queue, a.version, int(a) >> 8)
        if current is None or key != current_key or len(current.targets) >= size:
            if current is not None:
                yield current
            current = Shard(next_id, queue)
            current_key = key
            next_id += 1
        current.targets.append(address)
    if current is not None and current.targets:
        yield current
