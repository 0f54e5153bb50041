"""The WannaCry kill-switch detector: DNS queries for the domains WannaCry looks up before spreading.

A host asking for one is infected (see :mod:`smbsentry.detect.dns` for the
domains and the parser).  One alert per (client, resolver, domain); repeats
are counted as suppressed.  Both tables are bounded.
"""

from __future__ import annotations

from .config import Config
from .dns import killswitch_domain, parse_question
from .events import Events
from .flows import flow_id

__all__ = ["KillswitchDns"]

#: UDP flow ids kept (client/resolver port pairs) before the oldest is forgotten.
MAX_UDP_IDS = 4096


class KillswitchDns:
    """wannacry-killswitch-dns over the UDP port 53 traffic the engine hands over."""

    def __init__(self, cfg: Config, out: Events) -> None:
        self.max_seen = cfg.max_dns_seen
        self.out = out
        self.seen: dict[tuple[bytes, bytes, str], int] = {}
        self.udp_ids: dict[tuple[bytes, int, bytes, int], int] = {}
        self.malformed = 0

    def packet(self, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, ts: float) -> None:
        """One UDP datagram to or from port 53."""
        q = parse_question(payload)
        if q is None:
            self.malformed += 1
            return
        response, name, qtype = q
        if response:
            return
        domain = killswitch_domain(name)
        if domain is None:
            return
        k = (src, dst, domain)
        seen = self.seen
        if k in seen:
            seen[k] += 1
            self.out.alerts_suppressed += 1
            return
        if len(seen) >= self.max_seen:
            del seen[next(iter(seen))]
        seen[k] = 1
        fkey = (src, sport, dst, dport)
        ids = self.udp_ids
        fid = ids.get(fkey) or ids.get((dst, dport, src, sport))
        if fid is None:
            if len(ids) >= MAX_UDP_IDS:
                del ids[next(iter(ids))]
            fid = ids[fkey] = flow_id(17, src, sport, dst, dport, ts)
        ev, src_ip = self.out.alert(ts, fid, src, sport, dst, dport, "UDP", "wannacry-killswitch-dns",
                                    f"DNS query for {name} (WannaCry kill-switch domain {domain})")
        ev["dns"] = {"query": name, "rrtype": qtype, "killswitch_domain": domain}
        self.out.emit(ev, "wannacry-killswitch-dns", src_ip)
