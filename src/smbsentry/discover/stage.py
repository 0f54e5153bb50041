"""What a discovery run is asked, what it found, and which mode runs.

`run` (discover/run.py) picks the mode: `syn` (raw sockets: stateless SYN probes, see
syn.py) when this process may open raw sockets, `connect` (full TCP
connects with adaptive timeouts, connect.py) otherwise; `auto` tries syn
and falls back with the reason.  `Stats.mode_line` is the line the scan
prints so that a reader knows which one ran and why.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .permute import AddressSpace, Permutation

__all__ = ["MODES", "DEFAULT_RATE", "Request", "Stats", "check_mode", "raw_allowed"]

MODES = ("auto", "syn", "connect")
DEFAULT_RATE = 10_000  # packets per second when --rate is 0: ZMap's default
COOLDOWN = 2.0  # seconds to wait for late SYN-ACKs after the last probe
SAMPLE = 5  # addresses named in the summary line per kind


@dataclass
class Request:
    """One discovery run: the addresses (excludes already cut), the ports, the pace."""

    space: AddressSpace
    smb_ports: tuple[int, ...]
    service_ports: tuple[int, ...] = ()  # TCP ports of the service probes: a SYN-ACK there hands the host over
    rate: float = DEFAULT_RATE  # packets (syn) or new connections (connect) per second
    retries: int = 0
    timeout: float = 5.0  # the SMB negotiate's reply wait
    concurrency: int = 256  # connects in flight (connect mode) and negotiates in flight (both)
    shard: tuple[int, int] = (0, 1)  # (i, n): this run walks every n-th step of the permutation from step i
    cooldown: float = COOLDOWN
    backlog: Callable[[], int] | None = None  # hosts handed on and not yet taken: discovery pauses while high
    # engines (engines/sweep.py): the same seed gives every engine the same permutation of `space`, so that
    # the shards are disjoint; `cover` is the part of `space` this run may probe (its --allow), None: all
    seed: int | None = None
    cover: AddressSpace | None = None

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(self.smb_ports + self.service_ports))

    def permutation(self) -> Permutation:
        """The walk over `space`: the seed's when one is given (engines), a fresh random one otherwise."""
        return Permutation.random(self.space.count, random.Random(self.seed) if self.seed is not None else None)

    def addresses(self, perm: Permutation) -> Iterator[int]:
        """This run's addresses (as integers) in the walk's order: its shard, inside `cover`; each once."""
        space, cover = self.space, self.cover
        single, base = len(space.starts) == 1, space.starts[0] if space.starts else 0
        for index in perm.shard(*self.shard):
            address = base + index if single else space.address(index)
            if cover is None or address in cover:
                yield address


@dataclass
class Stats:
    mode: str
    why: str = ""  # why this mode (a fallback's reason)
    engine: str = ""  # the send path (syn) or the timeout rule (connect)
    rate: float = 0
    retries: int = 0
    addresses: int = 0  # addresses walked (the first pass): the range, or an engine's shard inside its --allow
    sent: int = 0  # packets (syn) or connects (connect)
    answered: int = 0  # hosts with an open port (SYN-ACK or accepted connect)
    closed: int = 0  # RSTs / refused connects to our probes
    confirmed: int = 0  # hosts whose SMB answered a negotiate
    services_only: int = 0  # hosts handed over for an open service port, SMB not confirmed
    unconfirmed: int = 0  # open SMB port, no SMB answer, not a middlebox: handed on all the same
    middleboxes: int = 0  # no SMB answer and port 1 open too: answers on every port, not counted
    elapsed: float = 0.0
    sending: float = 0.0  # syn: seconds the probes took to go out (all passes)
    source_ports: str = ""
    timeout: float | None = None  # connect mode: the adaptive timeout at the end
    unconfirmed_sample: list[str] = field(default_factory=list)
    middlebox_sample: list[str] = field(default_factory=list)

    def note(self, kind: str, address: str) -> None:
        """Count a host that was not confirmed: kind is "unconfirmed" or "middlebox"."""
        if kind == "unconfirmed":
            self.unconfirmed += 1
            sample = self.unconfirmed_sample
        else:
            self.middleboxes += 1
            sample = self.middlebox_sample
        if len(sample) < SAMPLE:
            sample.append(address)

    def mode_line(self) -> str:
        if self.mode == "syn":
            how = f"syn ({self.engine}, {self.rate:,.0f} packets/s, retries {self.retries}, source ports {self.source_ports})"
        else:
            how = (f"connect (adaptive timeouts, now {self.timeout * 1000:.0f} ms; retries {self.retries}"
                   + (f", {self.rate:,.0f} connects/s" if self.rate else "") + ")")
        return f"discovery: {how}" + (f" - {self.why}" if self.why else "")

    def summary_line(self) -> str:
        unit = "packets" if self.mode == "syn" else "connects"
        pace = f" (sent in {self.sending:.2f}s: {self.sent / self.sending:,.0f}/s)" if self.sending > 0 else ""
        return (f"discovery: {self.addresses} addresses, {self.sent} {unit}{pace}, {self.elapsed:.1f}s in all; "
                f"{self.answered} answered, {self.confirmed} SMB confirmed"
                + (f", {self.services_only} other services only" if self.services_only else "")
                + _some(self.unconfirmed, self.unconfirmed_sample, "open without an SMB answer (assessed all the same")
                + _some(self.middleboxes, self.middlebox_sample, "answering on every port (middlebox or tarpit, not counted")
                + (f"; connect timeout {self.timeout * 1000:.0f} ms at the end" if self.mode == "connect" and self.timeout else ""))


def _some(count: int, sample: list[str], what: str) -> str:
    if not count:
        return ""
    return f", {count} {what}: {', '.join(sample)}" + (", ..." if count > len(sample) else "") + ")"


def raw_allowed() -> tuple[bool, str]:
    """May this process open raw sockets?  (root or CAP_NET_RAW; tried, not guessed)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
    except PermissionError:
        who = "not root" if os.geteuid() != 0 else "no CAP_NET_RAW"
        return False, f"raw sockets not allowed ({who})"
    except OSError as exc:
        return False, f"raw sockets unavailable ({exc.strerror})"
    return True, ""


def check_mode(mode: str) -> str:
    """--discovery, checked before the scan starts: ValueError (one line) for an unknown
    mode, or for syn where raw sockets are not allowed."""
    if mode not in MODES + ("none",):
        raise ValueError(f"unknown --discovery {mode!r} (choose from auto, syn, connect, none)")
    if mode == "syn":
        ok, why = raw_allowed()
        if not ok:
            raise ValueError(f"--discovery syn: {why}; run as root, grant CAP_NET_RAW, or use --discovery connect")
    return mode
