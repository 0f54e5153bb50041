"""The order in which discovery visits a range: a random walk of a cyclic group.

Probing 10.0.0.0/8 in address order sends a burst at every subnet in turn,
which is what trips an IDS and fills one router's ARP table at a time.
ZMap's answer, used here, keeps no per-address state: the multiplicative
group of integers modulo a prime ``p`` greater than the number of
addresses ``n`` is cyclic, so for a generator ``g`` the walk
``x, x*g, x*g^2, ...`` (mod p) visits every element ``1..p-1`` exactly once
before it comes back.  Element ``x`` stands for address index ``x - 1``;
the ``p - 1 - n`` elements past the range are skipped.  A random generator
and a random starting element give each scan its own order.

Shard ``i`` of ``k`` takes the positions ``i, i+k, i+2k, ...`` of the walk:
the shards are disjoint, together they are the whole walk, and each one is
spread over the whole range (what ZMap's ``--shard`` does).

The index space is an `AddressSpace`: sorted, merged IPv4 intervals with
the excludes already cut out, so an excluded address never costs a probe
and a /8 is a handful of integers.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["AddressBits", "AddressSpace", "Permutation", "is_prime", "next_prime", "prime_factors"]

_WITNESSES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)  # deterministic below 3.3e24


def is_prime(n: int) -> bool:
    """Miller-Rabin with fixed witnesses: exact for every n below 3.3 * 10**24."""
    if n < 2:
        return False
    for q in _WITNESSES:
        if n % q == 0:
            return n == q
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _WITNESSES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def next_prime(n: int) -> int:
    """The smallest prime strictly greater than n."""
    candidate = n + 1
    while not is_prime(candidate):
        candidate += 1
    return candidate


def prime_factors(n: int) -> list[int]:
    """The distinct prime factors of n (trial division: n is at most about 2**32 here)."""
    factors, q = [], 2
    while q * q <= n:
        if n % q == 0:
            factors.append(q)
            while n % q == 0:
                n //= q
        q += 1 if q == 2 else 2
    if n > 1:
        factors.append(n)
    return factors


class AddressSpace:
    """IPv4 addresses as merged intervals minus excludes, indexed 0..count-1."""

    __slots__ = ("starts", "ends", "offsets", "count")

    def __init__(self, blocks: Iterable[tuple[int, int]], excludes: Iterable[tuple[int, int]] = ()) -> None:
        merged = _merge(blocks)
        cut = _merge(excludes)
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.offsets: list[int] = []  # index of each interval's first address
        total = 0
        for lo, hi in _subtract(merged, cut):
            self.starts.append(lo)
            self.ends.append(hi)
            self.offsets.append(total)
            total += hi - lo + 1
        self.count = total

    def address(self, index: int) -> int:
        """The address (as an integer) at an index of the space."""
        i = bisect_right(self.offsets, index) - 1
        return self.starts[i] + index - self.offsets[i]

    def __contains__(self, address: int) -> bool:
        i = bisect_right(self.starts, address) - 1
        return i >= 0 and address <= self.ends[i]

    def index(self, address: int) -> int:
        """The index of an address of the space (the inverse of `address`)."""
        i = bisect_right(self.starts, address) - 1
        return self.offsets[i] + address - self.starts[i]


class AddressBits:
    """A set of addresses of an AddressSpace, one bit each: what discovery remembers of
    the hosts that answered, bounded by the range (a /8 is 2 MB) however many answer."""

    __slots__ = ("space", "bits")

    def __init__(self, space: AddressSpace) -> None:
        self.space = space
        self.bits = bytearray((space.count + 7) // 8)

    def add(self, address: int) -> None:
        i = self.space.index(address)
        self.bits[i >> 3] |= 1 << (i & 7)

    def __contains__(self, address: int) -> bool:
        i = self.space.index(address)
        return bool(self.bits[i >> 3] >> (i & 7) & 1)


def _merge(blocks: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(blocks):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _subtract(blocks: list[tuple[int, int]], cut: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    j = 0
    for lo, hi in blocks:
        while j < len(cut) and cut[j][1] < lo:
            j += 1
        k, cur = j, lo
        while cur <= hi:
            if k < len(cut) and cut[k][0] <= hi:
                if cut[k][0] > cur:
                    yield cur, cut[k][0] - 1
                cur = max(cur, cut[k][1] + 1)
                k += 1
            else:
                yield cur, hi
                break


@dataclass(frozen=True, slots=True)
class Permutation:
    """A walk of the group mod `prime` from `start` by `generator`: indices 0..count-1, each once."""

    count: int
    prime: int
    generator: int
    start: int  # an element of 1..prime-1

    @classmethod
    def random(cls, count: int, rng: random.Random | None = None) -> Permutation:
        """A fresh random order of `count` indices (count >= 1)."""
        if count < 1:
            raise ValueError("an empty range has no order")
        rng = rng or random.SystemRandom()
        prime = next_prime(count)
        if prime == 2:  # the group of order 1: its only element generates it
            return cls(count, 2, 1, 1)
        factors = prime_factors(prime - 1)
        while True:
            g = rng.randrange(2, prime)
            if all(pow(g, (prime - 1) // q, prime) != 1 for q in factors):
                return cls(count, prime, g, rng.randrange(1, prime))

    def shard(self, index: int = 0, shards: int = 1) -> Iterator[int]:
        """The indices at walk positions index, index+shards, ... (every index once over all shards)."""
        if not 0 <= index < shards:
            raise ValueError(f"shard {index} of {shards} does not exist")
        p, n = self.prime, self.count
        x = self.start * pow(self.generator, index, p) % p
        step = pow(self.generator, shards, p)
        for _ in range(index, p - 1, shards):
            if x <= n:
                yield x - 1
            x = x * step % p
