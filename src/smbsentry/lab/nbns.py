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

from ..protocol import nbns as wire
from ..protocol.errors import ProtocolError
from .profile_model import Profile

NBNS_PORT = 137
NB, NBSTAT = wire.NB, wire.NBSTAT
MAX_ADDRESSES = 4096  # one UDP socket per address: beyond this the lab serves the first ones only
TTL = 300000
MAX_DATAGRAM = 576  # RFC 1002's limit for a name service datagram: the lab reads no more


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
    try:
        request = wire.parse_query(query)
    except ProtocolError:
        return None
    if request.qname[0] != 0x20:
        return None
    if request.qtype == NBSTAT:
        return wire.status_reply(request, host_names(profile), b"\x02\x00" + ipaddress.IPv4Address(address).packed)
    if request.qtype != NB:
        return None
    decoded = request.name()
    if decoded is None or decoded[1] not in (0x00, 0x20) or decoded[0].upper() != profile.netbios_name.upper():
        return None
    return wire.name_reply(request, ipaddress.IPv4Address(address).packed, TTL)


class NameService(asyncio.DatagramProtocol):
    """UDP 137 of one emulated address."""

    def __init__(self, profile: Profile, address: str) -> None:
        self.profile = profile
        self.address = address
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = answer(self.profile, self.address, data[:MAX_DATAGRAM])
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
