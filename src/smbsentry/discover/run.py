"""Run a discovery: the SYN stage where raw sockets are allowed, the connect stage otherwise.

Kept apart from stage.py (the request, the stats and the mode check), which
both stages import: the dispatcher importing the stages is then no cycle."""

from __future__ import annotations

from collections.abc import Callable

from .connect import ConnectDiscovery
from .sender import RawUnavailable
from .stage import Request, Stats, raw_allowed
from .syn import SynDiscovery


async def run(req: Request, mode: str, on_host: Callable[[str], None],
              on_stats: Callable[[Stats], None] | None = None) -> Stats:
    """Discover req's hosts; `on_host` gets each address to assess as soon as it is confirmed.

    `on_stats` gets the Stats once the mode is known (before the first probe),
    so that the caller can print the mode line while discovery runs."""
    why = ""
    if mode in ("auto", "syn"):
        ok, why = raw_allowed()
        if ok:
            try:
                syn = SynDiscovery(req, on_host)
            except RawUnavailable as exc:
                ok, why = False, f"raw sockets unavailable ({exc.strerror or exc})"
            except OSError as exc:
                ok, why = False, f"cannot prepare SYN probes ({exc.strerror or exc})"
            if ok:
                if on_stats is not None:
                    on_stats(syn.stats)
                return await syn.run()
        if mode == "syn":
            raise PermissionError(why)
    discovery = ConnectDiscovery(req, on_host, why=why)
    if on_stats is not None:
        on_stats(discovery.stats)
    return await discovery.run()
