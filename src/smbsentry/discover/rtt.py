"""Connect timeouts that follow the network, as nmap's do.

A fixed 5-second connect timeout makes every silent address of a sparse
range cost 5 seconds.  nmap starts with a 1-second timeout and then
follows the round-trip times it measures (smoothed RTT plus four times its
variation, RFC 6298's formula), between 100 ms and 10 s: a LAN 1 ms away
settles near the 100 ms floor, a WAN link keeps a long one.  Every connect
that gets an answer (accepted or refused) is a sample; a timeout is not
(there was no answer to time).
"""

from __future__ import annotations

__all__ = ["RttEstimator"]

INITIAL = 1.0
FLOOR = 0.1
CEILING = 10.0


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "samples")

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.samples = 0

    def sample(self, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            delta = rtt - self.srtt
            self.srtt += delta / 8
            self.rttvar += (abs(delta) - self.rttvar) / 4
        self.samples += 1

    @property
    def timeout(self) -> float:
        """Seconds to wait for the next connect."""
        if self.srtt is None:
            return INITIAL
        return min(CEILING, max(FLOOR, self.srtt + 4 * self.rttvar))
