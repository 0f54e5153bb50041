"""Scan targets: validate what the user gave us up front, expand it lazily.

A scan of 10.0.0.0/8 must start probing at once and must never hold sixteen
million addresses in memory, so every address block is kept as two integers
and turned into `Target` objects one at a time by generators.  Validation, on
the other hand, happens before anything is expanded: `parse_spec` and
`TargetSet` reject a bad command-line token with `TargetError` (the CLI turns
that into exit status 2) before the first packet is sent.

Token syntax (command line, --exclude and plain targets files)::

    10.0.0.5                    one IPv4 address
    2001:db8::5                 one IPv6 address (zone indexes like %eth0 are refused)
    10.0.0.0/24  2001:db8::/120 CIDR; host bits may be set (10.0.0.7/24 means 10.0.0.0/24)
    10.0.0.1-10.0.0.50          inclusive range, either family (not mixed)
    10.0.0.1-50                 short form: the end replaces the last IPv4 octet
    filesrv1.corp.example       host name, resolved only at scan time (see `resolve`)

Choices worth knowing:

* An IPv4 CIDR shorter than /31 yields every address except its network and
  broadcast addresses (what ``IPv4Network.hosts()`` does); /31 and /32 yield
  all their addresses (RFC 3021 point-to-point links).  IPv6 has no broadcast,
  so an IPv6 CIDR yields every address, including the subnet-router anycast
  address.  As an *exclude*, a CIDR always covers the whole block.
* Targets are not deduplicated across tokens or files: that would need memory
  proportional to the scan.  ``10.0.0.0/24 10.0.0.5`` scans 10.0.0.5 twice.
* Excludes are kept as sorted, merged integer intervals; expansion walks the
  gaps between them (found by bisect), so excluding a /16 from a /8 costs
  nothing per excluded address.  Host names are refused in --exclude: they
  would have to be resolved (blocking) before the scan starts; exclude the
  address instead.  A host name *target* is checked against the excludes by
  the engine after resolution, with `TargetSet.is_excluded`.
* Commas and whitespace separate tokens, in `TargetSet` arguments as in files.

Targets files are sniffed by content, not by name: a file whose first
non-blank character is ``<`` is nmap XML (-oX), ``[`` or ``{`` is masscan JSON
(-oJ, also the trailing-comma and one-object-per-line variants), anything else
is plain text (tokens separated by whitespace or commas, ``#`` starts a
comment).  nmap and masscan hosts become targets only when tcp/445 or tcp/139
(or another port the scan asks for: TargetSet's `ports`, e.g. the service
ports of --checks all) is reported open, and those ports are carried in
`Target.open_ports`.
XML with a DOCTYPE internal subset, an external DTD or ENTITY declarations is
refused; the bare ``<!DOCTYPE nmaprun>`` nmap writes itself is accepted.
masscan writes one record per open port: adjacent records of an address are
merged, non-adjacent ones are not (that would need memory for every host).
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import itertools
import json
import os
import re
import socket
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from xml.parsers import expat

from ..protocol import transport

__all__ = [
    "SMB_PORTS",
    "Target",
    "TargetError",
    "TargetSet",
    "TargetSpec",
    "load_targets_file",
    "parse_spec",
    "resolve",
]

SMB_PORTS = frozenset(transport.SMB_PORTS)

_CHUNK = 1 << 16            # bytes read from a targets file at a time
_MAX_LINE = 1 << 16         # a plain-text line (or masscan record) longer than this is junk
_ADDRESS_CHARS = re.compile(r"[0-9.\-]+\Z")   # looks like an IPv4 address or range attempt
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


@dataclass(frozen=True, slots=True)
class Target:
    """One host to scan.

    `address` is a normalised IP address string, or None for a host name that
    is still to be resolved at scan time (then `hostname` is set).  When both
    are set (nmap reported a name), the address is what gets scanned.
    `open_ports` is the subset of the wanted ports a previous nmap/masscan run saw
    open, so the engine may skip the others; None means "not known, try all".
    """

    address: str | None
    hostname: str | None = None
    open_ports: frozenset[int] | None = None


class TargetError(ValueError):
    """A target token, targets file or file line that cannot be accepted.

    ``str()`` is always one line naming the offending token, prefixed with
    ``file:line`` when it came from a targets file, e.g.
    ``targets.txt:12: bad target 'x..y': empty label in host name``.
    `token` is None for errors about a file as a whole (unreadable, bad XML).
    """

    def __init__(self, token: str | None, reason: str, where: str | None = None):
        super().__init__(token, reason, where)   # keeps the error picklable
        self.token = token
        self.reason = " ".join(str(reason).split())
        self.where = where

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        if self.token is None:
            return prefix + self.reason
        return f"{prefix}bad target {self.token!r}: {self.reason}"


def _v4(n: int) -> str:
    return socket.inet_ntoa(n.to_bytes(4, "big"))   # the fast path: a /16 in ~50 ms


def _v6(n: int) -> str:
    return str(ipaddress.IPv6Address(n))            # ipaddress's canonical compressed form


_FORMAT = {4: _v4, 6: _v6}


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One validated token: a block of addresses first..last, or a host name.

    Holds two integers, never a list; iterating yields `Target`s lazily.
    """

    token: str
    version: int | None         # 4 or 6; None for a host name
    first: int = 0              # first address yielded, as an integer
    last: int = 0               # last address yielded (inclusive)
    hostname: str | None = None

    @property
    def count(self) -> int:
        """Number of targets this token yields (1 for a host name)."""
        return 1 if self.version is None else self.last - self.first + 1

    def __iter__(self) -> Iterator[Target]:
        return _expand(self, None)


def _expand(spec: TargetSpec, excludes: _IntervalSet | None) -> Iterator[Target]:
    if spec.version is None:
        yield Target(None, spec.hostname)
        return
    if excludes:
        runs = excludes.gaps(spec.version, spec.first, spec.last)
    else:
        runs = (range(spec.first, spec.last + 1),)   # range handles 128-bit ints lazily
    fmt = _FORMAT[spec.version]
    for run in runs:
        yield from map(Target, map(fmt, run))


# --- parsing -----------------------------------------------------------------

def _address(text: str, token: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse one address, keeping ipaddress's reason (it names the bad octet)."""
    if "%" in text:
        raise TargetError(token, "zone indexes (%...) are not supported")
    try:
        if ":" in text:
            return ipaddress.IPv6Address(text)
        return ipaddress.IPv4Address(text)
    except ValueError as e:
        if text.count(":") == 1:
            raise TargetError(token, "looks like host:port; ports are set with --ports") from None
        raise TargetError(token, str(e)) from None


def _block(token: str) -> tuple[int | None, int, int, bool]:
    """Parse a token to (version, low, high, is_ipv4_subnet); version None = host name.

    is_ipv4_subnet tells parse_spec to drop network and broadcast addresses;
    excludes ignore it and cover the whole block.
    """
    t = token.strip()
    if not t:
        raise TargetError(token, "empty target")
    if any(c.isspace() for c in t):
        raise TargetError(token, "contains whitespace (give one target per token)")
    if "/" in t:
        address, _, prefix = t.partition("/")
        if ":" not in address and not _ADDRESS_CHARS.match(address):
            raise TargetError(token, "CIDR needs an IP address before the '/'")
        base = _address(address, token)          # names the bad octet, if any
        try:
            net = ipaddress.ip_network(t, strict=False)
        except ValueError:
            raise TargetError(token, f"{prefix!r} is not a valid IPv{base.version} "
                                     "prefix length or netmask") from None
        lo, hi = int(net.network_address), int(net.broadcast_address)
        return net.version, lo, hi, net.version == 4 and net.prefixlen < 31
    left, dash, right = t.partition("-")
    if dash and (":" in t or _ADDRESS_CHARS.match(t)):   # IPv6 never contains '-'
        start = _address(left, token)
        if not right:
            raise TargetError(token, "range has no end")
        if "." in right or ":" in right:
            end = _address(right, token)
        elif start.version == 4:
            try:
                end = ipaddress.IPv4Address(left.rsplit(".", 1)[0] + "." + right)
            except ValueError as e:
                raise TargetError(token, f"range end: {e}") from None
        else:
            raise TargetError(token, "the short range form a.b.c.d-N is IPv4 only; "
                                     "give the full IPv6 end address")
        if end.version != start.version:
            raise TargetError(token, "range mixes IPv4 and IPv6")
        if end < start:
            raise TargetError(token, f"range end {end} is before its start {start}")
        return start.version, int(start), int(end), False
    if ":" in t or _ADDRESS_CHARS.match(t):
        a = _address(t, token)
        return a.version, int(a), int(a), False
    _check_hostname(t, token)
    return None, 0, 0, False


def _check_hostname(name: str, token: str) -> None:
    """RFC 1123 syntax (plus '_', common in Windows names); no resolution here."""
    if not name.isascii():
        raise TargetError(token, "host names must be ASCII (give the IDNA 'xn--' form)")
    bare = name[:-1] if name.endswith(".") else name
    if len(bare) > 253:
        raise TargetError(token, "host name longer than 253 characters")
    labels = bare.split(".")
    for label in labels:
        if not label:
            raise TargetError(token, "empty label in host name")
        if not _LABEL.match(label):
            raise TargetError(token, f"{label!r} is not a valid host name label "
                                     "(letters, digits, '-', '_'; at most 63)")
    if labels[-1].isdigit():
        raise TargetError(token, "neither an IP address nor a host name (numeric last label)")


MAX_TARGET_ADDRESSES = 1 << 24  # an IPv4 /8: the most one target token may cover


def parse_spec(token: str) -> TargetSpec:
    """Validate one target token; raises TargetError.  Expansion is lazy.

    One token covers at most a /8 (16,777,216 addresses): a slip of the prefix
    (10.0.0.0/0 for /16) would otherwise sweep the whole Internet, or an IPv6
    /64 for ever.  Larger plans are given as several /8s, on purpose."""
    version, lo, hi, subnet = _block(token)
    t = token.strip()
    if version is None:
        return TargetSpec(t, None, hostname=t)
    if hi - lo + 1 > MAX_TARGET_ADDRESSES:
        raise TargetError(token, f"covers {hi - lo + 1:,} addresses; one target may cover at most "
                                 f"{MAX_TARGET_ADDRESSES:,} (a /8): check the prefix, or give the /8s one by one")
    if subnet:
        lo, hi = lo + 1, hi - 1
    return TargetSpec(t, version, lo, hi)


def _exclude_block(token: str) -> tuple[int, int, int]:
    version, lo, hi, _ = _block(token)
    if version is None:
        raise TargetError(token, "host names cannot be excluded (they are resolved only "
                                 "at scan time); exclude the address instead")
    return version, lo, hi


def _split(tokens: Iterable[str]) -> Iterator[str]:
    """Split arguments on commas and whitespace, like a line of a targets file."""
    if isinstance(tokens, str):
        tokens = (tokens,)
    for arg in tokens:
        parts = arg.replace(",", " ").split()
        if not parts:
            raise TargetError(arg, "empty target")
        yield from parts


# --- excludes ----------------------------------------------------------------

class _IntervalSet:
    """Sorted, merged, disjoint inclusive intervals per address family.

    Membership and gap-finding use bisect, so the cost depends on the number
    of exclude tokens, never on the number of addresses they cover.
    """

    __slots__ = ("_starts", "_ends")

    def __init__(self, blocks: Iterable[tuple[int, int, int]]):
        by_family: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for version, lo, hi in blocks:
            by_family[version].append((lo, hi))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, intervals in by_family.items():
            starts: list[int] = []
            ends: list[int] = []
            for lo, hi in sorted(intervals):
                if ends and lo <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], hi)
                else:
                    starts.append(lo)
                    ends.append(hi)
            self._starts[version], self._ends[version] = starts, ends

    def __bool__(self) -> bool:
        return bool(self._starts[4] or self._starts[6])

    def copy(self) -> "_IntervalSet":
        new = _IntervalSet(())
        new._starts = {v: list(x) for v, x in self._starts.items()}
        new._ends = {v: list(x) for v, x in self._ends.items()}
        return new

    def add(self, version: int, lo: int, hi: int) -> None:
        """Take lo..hi in, merged with the intervals it touches (bisect: the cost grows with the tokens)."""
        starts, ends = self._starts[version], self._ends[version]
        i = bisect_left(ends, lo - 1)               # first interval that ends at or after lo - 1
        j = bisect_right(starts, hi + 1)            # intervals before j start at or before hi + 1
        if i < j:
            lo, hi = min(lo, starts[i]), max(hi, ends[j - 1])
        starts[i:j], ends[i:j] = [lo], [hi]

    def intervals(self, version: int) -> list[tuple[int, int]]:
        return list(zip(self._starts[version], self._ends[version]))

    def contains(self, version: int, n: int) -> bool:
        i = bisect_right(self._starts[version], n) - 1
        return i >= 0 and self._ends[version][i] >= n

    def gaps(self, version: int, lo: int, hi: int) -> Iterator[range]:
        """The parts of lo..hi not covered by any interval, as ranges."""
        starts, ends = self._starts[version], self._ends[version]
        i = bisect_left(ends, lo)           # first interval that ends at or after lo
        cur = lo
        while cur <= hi:
            if i < len(starts) and starts[i] <= hi:
                if starts[i] > cur:
                    yield range(cur, starts[i])
                cur = max(cur, ends[i] + 1)
                i += 1
            else:
                yield range(cur, hi + 1)
                return

    def overlap(self, version: int, lo: int, hi: int) -> int:
        """How many addresses of lo..hi the intervals cover."""
        starts, ends = self._starts[version], self._ends[version]
        total = 0
        for i in range(bisect_left(ends, lo), len(starts)):
            if starts[i] > hi:
                break
            total += min(hi, ends[i]) - max(lo, starts[i]) + 1
        return total


# --- the set the engine iterates --------------------------------------------

class TargetSet:
    """Everything to scan: command-line tokens, targets files, minus excludes.

    The constructor validates every token and exclude and checks that the
    files can be opened, so bad input fails before scanning starts.  Lines of
    targets files are validated as they are streamed (errors carry file:line).
    Iterating yields `Target`s lazily: command-line tokens first, in order,
    then each file.
    """

    def __init__(self, tokens: Iterable[str] = (), *,
                 files: Iterable[str | os.PathLike[str]] = (),
                 excludes: Iterable[str] = (),
                 ports: Iterable[int] = SMB_PORTS):
        # the TCP ports that make an nmap/masscan host a target
        self.ports: frozenset[int] = frozenset(ports)
        self.specs: tuple[TargetSpec, ...] = tuple(parse_spec(t) for t in _split(tokens))
        self.files: tuple[str, ...] = tuple(os.fspath(f) for f in files)
        for name in self.files:
            try:
                open(name, "rb").close()
            except OSError as e:
                raise TargetError(None, f"cannot read targets file: {e.strerror}",
                                  where=name) from None
        self._excludes = _IntervalSet(_exclude_block(t) for t in _split(excludes))

    @property
    def estimated_count(self) -> int | None:
        """Targets the command-line tokens yield after excludes, for a progress bar.

        None when targets files are involved (their size is unknown until read).
        An address two tokens cover is counted once, as it is scanned once.
        """
        if self.files:
            return None
        total = 0
        seen = self._excludes.copy()
        for spec in self.specs:
            total += spec.count
            if spec.version is not None:
                total -= seen.overlap(spec.version, spec.first, spec.last)
                seen.add(spec.version, spec.first, spec.last)
        return total

    def is_excluded(self, address: str) -> bool:
        """True if the address is covered by an exclude (for resolved host names)."""
        try:
            a = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return self._excludes.contains(a.version, int(a))

    def __iter__(self) -> Iterator[Target]:
        return self._targets()

    def ipv4_ranges(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(blocks, excludes) of the IPv4 command-line tokens of more than one address,
        as inclusive integer intervals: what discovery walks (smbsentry.discover)."""
        blocks = [(s.first, s.last) for s in self.specs if s.version == 4 and s.last > s.first]
        excludes = self._excludes.intervals(4)
        return blocks, excludes

    def without_ipv4_ranges(self) -> Iterator[Target]:
        """Every target but those of `ipv4_ranges`: single addresses, host names, IPv6, files."""
        swept = self._excludes.copy()  # ... and none that a swept range covers: discovery finds those
        for spec in self.specs:
            if spec.version == 4 and spec.last > spec.first:
                swept.add(4, spec.first, spec.last)
        yield from self._command_line(swept, lambda spec: not (spec.version == 4 and spec.last > spec.first))
        yield from self._file_targets(self._excludes or None)

    def _targets(self) -> Iterator[Target]:
        yield from self._command_line(self._excludes.copy(), lambda spec: True)
        yield from self._file_targets(self._excludes or None)

    def _command_line(self, seen: _IntervalSet, wanted) -> Iterator[Target]:
        """The `wanted` command-line tokens' targets, each address once (a token's addresses that an earlier
        token or `seen` covers are skipped: 10.0.0.5 10.0.0.0/24 scans 10.0.0.5 once). Targets files stream
        and are not checked against each other."""
        for spec in self.specs:
            if wanted(spec):
                yield from _expand(spec, seen or None)
            if spec.version is not None:
                seen.add(spec.version, spec.first, spec.last)

    def _file_targets(self, ex: _IntervalSet | None) -> Iterator[Target]:
        for name in self.files:
            for item in _file_items(name, self.ports):
                if isinstance(item, TargetSpec):
                    yield from _expand(item, ex)
                elif ex is None or item.address is None or not self.is_excluded(item.address):
                    yield item


# --- targets files ------------------------------------------------------------

def load_targets_file(path: str | os.PathLike[str], ports: Iterable[int] = SMB_PORTS) -> Iterator[Target]:
    """Stream the targets of a plain, nmap XML or masscan JSON file (sniffed)."""
    for item in _file_items(path, frozenset(ports)):
        if isinstance(item, TargetSpec):
            yield from item
        else:
            yield item


def _file_items(path: str | os.PathLike[str], ports: frozenset[int] = SMB_PORTS) -> Iterator[TargetSpec | Target]:
    """Plain files give TargetSpecs (so TargetSet can skip excludes by interval);
    nmap and masscan files give Targets carrying their open ports."""
    name = os.fspath(path)
    try:
        f = open(name, "rb")
    except OSError as e:
        raise TargetError(None, f"cannot read targets file: {e.strerror}", where=name) from None
    with f:
        chunks = iter(lambda: f.read(_CHUNK), b"")
        head = b""
        for chunk in chunks:            # read until the first non-blank byte
            head += chunk
            if head.removeprefix(codecs.BOM_UTF8).lstrip():
                break
        first = head.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
        stream = itertools.chain((head,), chunks)
        if first == b"<":
            yield from _nmap_targets(stream, name, ports)
        elif first in (b"[", b"{"):
            yield from _masscan_targets(_decode(stream), name, ports)
        else:
            yield from _plain_specs(_decode(stream), name)


def _decode(chunks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _plain_specs(texts: Iterable[str], name: str) -> Iterator[TargetSpec]:
    lineno = 0
    pending = ""
    for text in itertools.chain(texts, ("\n",)):
        pending += text
        *lines, pending = pending.split("\n")
        for line in lines:
            lineno += 1
            for token in line.split("#", 1)[0].replace(",", " ").split():
                try:
                    yield parse_spec(token)
                except TargetError as e:
                    raise TargetError(e.token, e.reason, f"{name}:{lineno}") from None
        if len(pending) > _MAX_LINE:
            raise TargetError(None, "line too long", f"{name}:{lineno + 1}")


def _checked_address(address: object, where: str) -> str:
    if not isinstance(address, str):
        raise TargetError(None, f"host without a usable IP address ({address!r})", where)
    try:
        return str(_address(address, address))
    except TargetError as e:
        raise TargetError(e.token, e.reason, where) from None


def _nmap_targets(chunks: Iterable[bytes], name: str, wanted: frozenset[int] = SMB_PORTS) -> Iterator[Target]:
    """Stream <host> elements of nmap -oX output with expat.

    Driven through pyexpat directly rather than ElementTree.iterparse because
    iterparse offers no public hook to refuse DOCTYPE internal subsets and
    ENTITY declarations (the billion-laughs and external-entity attacks); a
    bare ``<!DOCTYPE nmaprun>``, which nmap itself writes, is accepted.  Only
    the current host's few fields are kept, so memory stays constant.
    """
    parser = expat.ParserCreate()
    found: list[Target] = []
    host: dict | None = None     # address, hostname, ports, line of the host being read
    port: tuple[str | None, str | None] | None = None
    root_seen = False

    def where() -> str:
        return f"{name}:{parser.CurrentLineNumber}"

    def refuse_entities(*_args: object) -> None:
        raise TargetError(None, "XML entity declarations are refused "
                                "(possible entity-expansion attack)", where())

    def doctype(_name: str, system_id: str | None, public_id: str | None,
                has_internal_subset: int) -> None:
        if has_internal_subset or system_id or public_id:
            raise TargetError(None, "XML DOCTYPE with an internal subset or external DTD "
                                    "is refused (possible entity-expansion attack)", where())

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal host, port, root_seen
        if not root_seen:
            root_seen = True
            if tag != "nmaprun":
                raise TargetError(None, f"XML root element is <{tag}>, not nmap's <nmaprun>",
                                  where())
        if tag == "host":
            host = {"address": None, "hostname": None, "ports": set(), "line": where()}
        elif host is None:
            return                               # e.g. <hosthint>: no port results
        elif tag == "address":
            if attrs.get("addrtype") in ("ipv4", "ipv6") and host["address"] is None:
                host["address"], host["line"] = attrs.get("addr"), where()
        elif tag == "hostname":
            if host["hostname"] is None:
                host["hostname"] = attrs.get("name")
        elif tag == "port":
            port = (attrs.get("protocol"), attrs.get("portid"))
        elif tag == "state" and port is not None:
            protocol, portid = port
            if (protocol == "tcp" and portid and portid.isdigit()
                    and int(portid) in wanted and attrs.get("state") == "open"):
                host["ports"].add(int(portid))

    def end(tag: str) -> None:
        nonlocal host, port
        if tag == "port":
            port = None
        elif tag == "host" and host is not None:
            if host["ports"]:
                address = _checked_address(host["address"], host["line"])
                found.append(Target(address, host["hostname"], frozenset(host["ports"])))
            host = None

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = refuse_entities
    parser.UnparsedEntityDeclHandler = refuse_entities
    parser.ExternalEntityRefHandler = refuse_entities
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        for chunk in itertools.chain(chunks, (b"",)):
            parser.Parse(chunk, not chunk)
            yield from found
            found.clear()
    except expat.ExpatError as e:
        raise TargetError(None, f"not well-formed XML: {expat.ErrorString(e.code)}",
                          f"{name}:{e.lineno}") from None


_MASSCAN_FINISHED = re.compile(r"\{\s*finished\s*:\s*1\s*\}")   # old masscan's non-JSON trailer
_MASSCAN_SEPARATORS = frozenset(" \t\r\n,[]")


def _masscan_targets(texts: Iterable[str], name: str, wanted: frozenset[int] = SMB_PORTS) -> Iterator[Target]:
    """Stream masscan -oJ records, tolerating its quirks.

    Objects are decoded one at a time with raw_decode, and the ``[``, ``]``
    and ``,`` between them are skipped, so a proper JSON list, a list with a
    trailing comma, old masscan's ``{finished: 1}`` trailer and one object
    per line (-oD style records with "port"/"data" are understood too) all
    work.  masscan writes one record per open port; records for the same
    address are merged when adjacent.  Merging non-adjacent ones would need
    memory for every host, so a host may then come twice, each time with the
    ports of its own records.
    """
    decoder = json.JSONDecoder()
    texts = iter(texts)
    buf, pos, line, eof = "", 0, 1, False
    pending: tuple[str, set[int]] | None = None       # adjacent records of one address

    def more() -> bool:
        nonlocal buf, pos, eof
        text = next(texts, None)
        if text is None:
            eof = True
            return False
        buf, pos = buf[pos:] + text, 0
        return True

    while True:
        while pos < len(buf) and buf[pos] in _MASSCAN_SEPARATORS:
            line += buf[pos] == "\n"
            pos += 1
        if pos == len(buf):
            if not more():
                break
            continue
        here = f"{name}:{line}"
        if buf[pos] != "{":
            raise TargetError(None, f"not masscan JSON: expected an object, found "
                                    f"{buf[pos]!r}", here)
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as e:
            finished = _MASSCAN_FINISHED.match(buf, pos)
            if finished:
                line += buf.count("\n", pos, finished.end())
                pos = finished.end()
                continue
            if not eof and len(buf) - pos <= _MAX_LINE and more():
                continue                         # record cut by the chunk boundary
            bad_line = line + buf.count("\n", pos, e.pos)
            raise TargetError(None, f"not valid masscan JSON: {e.msg}",
                              f"{name}:{bad_line}") from None
        line += buf.count("\n", pos, end)
        pos = end
        if not isinstance(obj, dict) or "ip" not in obj:
            continue                             # status/metadata records
        ports = _masscan_open_ports(obj, wanted)
        if not ports:
            continue
        address = _checked_address(obj["ip"], here)
        if pending is not None and pending[0] == address:
            pending[1].update(ports)
            continue
        if pending is not None:
            yield Target(pending[0], None, frozenset(pending[1]))
        pending = (address, ports)
    if pending is not None:
        yield Target(pending[0], None, frozenset(pending[1]))


def _masscan_open_ports(record: dict, wanted: frozenset[int] = SMB_PORTS) -> set[int]:
    entries = record.get("ports")
    if entries is None and "port" in record:     # -oD / ndjson style: one port per record
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        entries = [{"port": record["port"], "proto": record.get("proto"),
                    "status": record.get("status", data.get("status"))}]
    found = set()
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        port = entry.get("port")
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if (type(port) is int and port in wanted
                and entry.get("proto", "tcp") == "tcp" and entry.get("status") == "open"):
            found.add(port)
    return found


# --- resolution (the only network I/O in this module) -------------------------

async def resolve(target: Target, port: int = 445) -> list[Target]:
    """Resolve a host-name target to one Target per address, in resolver order.

    Uses loop.getaddrinfo, which runs in the default executor, so a slow DNS
    server never stalls the event loop or target expansion.  A target that
    already has an address is returned as is.  Raises OSError
    (socket.gaierror) when the name does not resolve: the engine records that
    against the host.  Engines usually scan the first address; the caller
    should drop addresses for which TargetSet.is_excluded is true.
    """
    if target.address is not None:
        return [target]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(target.hostname, port, type=socket.SOCK_STREAM)
    addresses = dict.fromkeys(str(info[4][0]) for info in infos)
    return [Target(a, target.hostname, target.open_ports) for a in addresses]
