"""The NetBIOS name service (UDP 137) of the emulated hosts.

A Windows host that serves the NetBIOS session service on 139 also answers
name queries on 137: a node status request (NBSTAT, what `nmblookup -A`,
nmap's nbstat and smb scripts send to learn the called name for port 139)
with its names, and a name query for its own name with its address
(RFC 1002 4.2.13/4.2.18).  Without it a client waits out its name-service
timeout on every connection.  Each address of the range answers as its
profile: the computer name <00> and <20>, the workgroup or domain <00> as a
group name.  Hosts that stall, send garbage or reset stay silent here too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct

from .profile_model import Profile
from .services.server import nbns_answer

NBNS_PORT = 137
NB, NBSTAT = 0x0020, 0x0021
MAX_ADDRESSES = 4096  # one UDP socket per address: beyond this the lab serves the first ones only
TTL = 300000


def decode_name(encoded: bytes) -> tuple[str, int] | None:
    """(name, suffix) of a first-level encoded NetBIOS name (32 bytes 'A'-'P')."""
    if len(encoded) != 32 or any(not 0x41 <= b <= 0x50 for b in encoded):
        return None
    raw = bytes(((encoded[i] - 0x41) << 4) | (encoded[i + 1] - 0x41) for i in range(0, 32, 2))
    return raw[:15].decode("latin-1").rstrip(" "), raw[15]


def host_names(profile: Profile) -> list[list]:
    """The NBSTAT name table of a profile: [name, suffix, group]."""
    names: list[list] = [[profile.netbios_name, 0x00, False], [profile.netbios_name, 0x20, False]]
    if profile.netbios_domain:
        names.append([profile.netbios_domain, 0x00, True])
    return names


def answer(profile: Profile, address: str, query: bytes) -> bytes | None:
    """The reply to one name-service packet, or None (not ours, malformed, or a reply)."""
    if profile.behaviour != "normal" or not profile.netbios_name:
        return None
    if len(query) < 12 + 34 + 4 or query[2] & 0x80 or query[12] != 0x20:
        return None
    qtype = struct.unpack_from(">H", query, 12 + 34)[0]
    if qtype == NBSTAT:
        mac = "02:00:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)
        return nbns_answer({"names": host_names(profile), "mac": mac}, query)
    if qtype != NB:
        return None
    decoded = decode_name(query[13:45])
    if decoded is None or decoded[1] not in (0x00, 0x20) or decoded[0].upper() != profile.netbios_name.upper():
        return None
    flags = 0x8400 | (struct.unpack_from(">H", query, 2)[0] & 0x0100)  # response, authoritative, RD echoed
    rdata = struct.pack(">H", 0) + ipaddress.IPv4Address(address).packed  # B-node, unique
    return (query[:2] + struct.pack(">HHHHH", flags, 0, 1, 0, 0) + query[12:46]
            + struct.pack(">HHIH", NB, 1, TTL, len(rdata)) + rdata)


class NameService(asyncio.DatagramProtocol):
    """UDP 137 of one emulated address."""

    def __init__(self, profile: Profile, address: str) -> None:
        self.profile = profile
        self.address = address
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = answer(self.profile, self.address, data[:576])
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
