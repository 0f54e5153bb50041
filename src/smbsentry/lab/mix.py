"""Which emulated host lives at which address, computed, never stored.

A lab range can hold millions of addresses, so nothing here keeps a
per-address table: `LabRange` maps an address to its index by arithmetic,
and `Mix` maps an index to a profile through a short repeating block
(bisect over cumulative counts).  The same two functions drive the server
(getsockname of each accepted connection) and the streamed manifest, so
the two can never disagree.
"""

from __future__ import annotations

import bisect
import ipaddress
import os
from dataclasses import dataclass

from ..protocol.transport import NETBIOS_SESSION, SMB_DIRECT_TCP
from . import profiles

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def in_initial_netns() -> bool:
    """Does this process share the machine's own network namespace?

    False only on proof of the contrary: the namespace differs from PID 1's,
    or (where PID 1's cannot be read, as in some containers) it is one of the
    namespaces `ip netns add` created (a file of /run/netns).  Inside such a
    namespace the addresses are that namespace's own, and the lab may serve
    any of them: that is how discovery is tested against a routed range."""
    try:
        mine = os.stat("/proc/self/ns/net")
    except OSError:
        return True
    key = (mine.st_dev, mine.st_ino)
    try:
        first = os.stat("/proc/1/ns/net")
    except OSError:
        pass
    else:
        return key == (first.st_dev, first.st_ino)
    try:
        named = [os.stat(entry.path) for entry in os.scandir("/run/netns")]
    except OSError:
        return True
    return key not in {(st.st_dev, st.st_ino) for st in named}


def servable(address: int) -> bool:
    """May the lab serve this IPv4 address here?  Loopback always; others only outside the initial namespace."""
    return ipaddress.IPv4Address(address) in LOOPBACK or not in_initial_netns()


class LabConfigError(ValueError):
    """A range, mix or port list the lab refuses."""


@dataclass(frozen=True, slots=True)
class LabRange:
    """A contiguous run of IPv4 addresses (inside 127.0.0.0/8 unless in a created namespace)."""

    first: int
    count: int

    def __len__(self) -> int:
        return self.count

    def index(self, address: int) -> int | None:
        i = address - self.first
        return i if 0 <= i < self.count else None

    def address(self, index: int) -> str:
        return str(ipaddress.IPv4Address(self.first + index))

    def __iter__(self):
        for i in range(self.count):
            yield self.address(i)

    def __str__(self) -> str:
        if self.count == 1:
            return self.address(0)
        return f"{self.address(0)}-{self.address(self.count - 1)}"


def parse_range(text: str) -> LabRange:
    """"127.50.0.0/24" (host addresses only, as nmap and the scanner expand
    it), "127.50.0.1-127.50.0.40", "127.50.0.1-40" or one address.  Anything
    outside 127.0.0.0/8 is refused in the machine's own network namespace: the
    lab serves loopback only there (`servable`)."""
    text = text.strip()
    try:
        if "/" in text:
            net = ipaddress.IPv4Network(text, strict=False)
            lo, hi = int(net.network_address), int(net.broadcast_address)
            if net.prefixlen < 31:
                lo, hi = lo + 1, hi - 1
        elif "-" in text:
            start, end = text.split("-", 1)
            first = ipaddress.IPv4Address(start)
            if "." in end:
                last = ipaddress.IPv4Address(end)
            else:
                last = ipaddress.IPv4Address((int(first) & ~0xFF) | int(end))
            lo, hi = int(first), int(last)
        else:
            lo = hi = int(ipaddress.IPv4Address(text))
    except (ValueError, ipaddress.AddressValueError) as exc:
        raise LabConfigError(f"bad lab range {text!r}: {exc}") from None
    if hi < lo:
        raise LabConfigError(f"bad lab range {text!r}: the end is before the start")
    for value in (lo, hi):
        if not servable(value):
            raise LabConfigError(f"lab range {text!r} leaves 127.0.0.0/8: the lab serves loopback addresses only "
                                 "(other addresses only inside a network namespace you created)")
    return LabRange(lo, hi - lo + 1)


@dataclass(frozen=True, slots=True)
class Mix:
    """A repeating block of (profile, count): address index i gets the profile
    at position i mod (sum of counts).  "win7-sp1-unpatched=1,win2019=9" is a
    10 % / 90 % lab of any size."""

    entries: tuple[tuple[str, int], ...]
    bounds: tuple[int, ...] = ()  # cumulative counts, filled in below

    def __post_init__(self) -> None:
        if not self.entries:
            raise LabConfigError("empty mix")
        total, bounds = 0, []
        for _, count in self.entries:
            total += count
            bounds.append(total)
        object.__setattr__(self, "bounds", tuple(bounds))

    @property
    def period(self) -> int:
        return self.bounds[-1]

    def name_at(self, index: int) -> str:
        return self.entries[bisect.bisect_right(self.bounds, index % self.period)][0]

    def profile_at(self, index: int) -> profiles.Profile:
        return profiles.get(self.name_at(index))

    def names(self) -> list[str]:
        return [n for n, _ in self.entries]

    def __str__(self) -> str:
        return ",".join(f"{n}={c}" for n, c in self.entries)


def default_mix() -> Mix:
    """Every profile once, in profiles.DEFAULT_ORDER."""
    return Mix(tuple((name, 1) for name in profiles.ordered_names()))


def parse_mix(text: str | None) -> Mix:
    """`None`/""/"default": the built-in mix; "NAME": every address that
    profile; "P1=COUNT,P2=COUNT,...": a repeating block (a bare name counts 1)."""
    if text is None or not text.strip() or text.strip() in ("default", "all"):
        return default_mix()
    entries = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, count_text = part.partition("=")
        name = name.strip()
        try:
            count = int(count_text) if count_text else 1
        except ValueError:
            raise LabConfigError(f"bad mix entry {part!r}: COUNT must be a whole number") from None
        if count < 1:
            raise LabConfigError(f"bad mix entry {part!r}: COUNT must be at least 1")
        try:
            profiles.get(name)
        except profiles.ProfileError as exc:
            raise LabConfigError(str(exc)) from None
        entries.append((name, count))
    return Mix(tuple(entries))


def _role_of(port: int) -> int:
    """A port given without a role is served the NetBIOS way only when it is the NetBIOS session port."""
    return NETBIOS_SESSION if port == NETBIOS_SESSION else SMB_DIRECT_TCP


def parse_ports(values) -> dict[int, int]:
    """Ports to serve and their role (445: direct TCP, 139: NetBIOS session
    first).  Accepts ints, (port, role) pairs and strings "445", "139,445",
    "44139=139"; a port without a role is 139-style only when it is 139."""
    if isinstance(values, (str, int)):
        values = [values]
    out: dict[int, int] = {}
    for value in values:
        if isinstance(value, tuple):
            items = [value]
        elif isinstance(value, int):
            items = [(value, _role_of(value))]
        else:
            items = []
            for token in str(value).split(","):
                token = token.strip()
                if not token:
                    continue
                port_text, _, role_text = token.partition("=")
                try:
                    port = int(port_text)
                    role = int(role_text) if role_text else _role_of(port)
                except ValueError:
                    raise LabConfigError(f"bad port {token!r}") from None
                items.append((port, role))
        for port, role in items:
            if not 0 < port < 65536 or role not in profiles.ROLES:
                raise LabConfigError(f"bad port {port}={role}: ports 1-65535, roles 445 or 139")
            out[int(port)] = int(role)
    if not out:
        raise LabConfigError("no ports to serve")
    return out
