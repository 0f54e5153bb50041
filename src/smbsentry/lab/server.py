"""The lab's asyncio server: many emulated hosts behind one socket per port.

Binding ("bind_mode"):
* "device": one socket per port on 0.0.0.0, pinned to the loopback device
  with SO_BINDTODEVICE so that only traffic on lo can reach it; every
  accepted connection's local address (getsockname) picks the host, and a
  connection to an address outside the range is dropped at once.
* "per-address": one socket per address and port (the kernel lets a socket
  bind any 127/8 address without adding it to lo).  Needed when the
  wildcard bind is impossible: another server (a test smbd on
  127.21.0.1:445) holds the port, or SO_BINDTODEVICE is not permitted.
* "auto" (default): "device", falling back per port to "per-address" with a
  log line saying why.
Only 127.0.0.0/8 is ever served in the machine's own network namespace;
`mix.parse_range` refuses anything else there.  Inside a namespace the
caller created (`ip netns exec`), any of its addresses may be served
(per-address binding: SO_BINDTODEVICE lo would not see traffic arriving
on another interface).  A lab that serves the real port 139 also answers
the NetBIOS name service on UDP 137 of each address (lab/nbns.py), as
Windows does; one that serves the real port 445 also answers SMB over QUIC on
UDP 443 for the profiles that have it (lab/quic.py, a real aioquic peer).

Each connection gets a `host.HostConnection` (sans-I/O) and a bounded life:
reads pause while the peer does not drain our replies, idle connections are
closed, and the number of open connections is capped.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import os
import resource
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ..protocol.transport import NETBIOS_SESSION, SMB_DIRECT_TCP
from . import nbns, profiles
from . import quic as quic_peer
from .host import EPOCH_DIFF, HostConnection
from .mix import LabConfigError, LabRange, Mix, parse_mix, parse_ports, parse_range, servable
from .profile_model import ROLES

log = logging.getLogger("smbsentry.lab")

BIND_MODES = ("auto", "device", "per-address")
BIND_ALIASES = {"address": "per-address", "per_address": "per-address", "addresses": "per-address"}
IDLE_TIMEOUT = 120.0
MAX_CONNECTIONS = 20000
BACKLOG = 4096  # create_server re-listens: pass it there too, or asyncio uses 100
WRITE_HIGH_WATER = 1 << 20
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)

__all__ = ["Lab", "LabConfigError", "parse_mix", "parse_ports", "parse_range", "serve", "run", "write_manifest"]


class _HostProtocol(asyncio.Protocol):
    """Glue between one accepted TCP connection and its HostConnection."""

    __slots__ = ("lab", "role", "transport", "host", "timer")

    def __init__(self, lab: "Lab", role: int) -> None:
        self.lab = lab
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.host: HostConnection | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        sockname = transport.get_extra_info("sockname")
        host = None
        if sockname and self.lab.active < self.lab.max_connections:
            host = self.lab.host_for(sockname[0], self.role)
        if host is None:
            transport.abort()  # outside the range, or over the connection cap
            return
        self.host = host
        self.lab.active += 1
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.lab.idle_timeout, self._idle)

    def _idle(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        host, transport = self.host, self.transport
        if host is None or transport is None:
            return
        self._arm()
        action = host.feed(data)
        if action.end == "reset":
            _reset(transport)
            return
        if action.send:
            transport.write(action.send)
        if action.end == "close":
            transport.close()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.host is not None:
            self.lab.active -= 1
            self.host = None


def _reset(transport: asyncio.Transport) -> None:
    """Close with RST (SO_LINGER 0), as Windows does to a refused SMBv1 negotiate."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


class Lab:
    """The emulated hosts of one range, on the given ports; start(), stop()."""

    def __init__(
        self,
        range: str | LabRange,  # noqa: A002 - the name the CLI and the issue use
        ports: Iterable = ROLES,
        mix: str | Mix | None = None,
        bind_mode: str = "auto",
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        nbns: bool | None = None,
        quic: int | bool | None = None,
    ) -> None:
        self.range = range if isinstance(range, LabRange) else parse_range(range)
        self.ports = parse_ports(ports) if not isinstance(ports, dict) else dict(ports)
        self.mix = mix if isinstance(mix, Mix) else parse_mix(mix)
        bind_mode = BIND_ALIASES.get(bind_mode, bind_mode)
        if bind_mode not in BIND_MODES:
            raise LabConfigError(f"bind mode must be one of {', '.join(BIND_MODES)}")
        self.bind_mode = bind_mode
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.active = 0
        self.start_time = int(time.time() * 10_000_000) + EPOCH_DIFF
        self.modes: dict[int, str] = {}  # port -> the bind mode in use
        # UDP 137 beside the real 139, as on Windows (None: when 139 itself is served)
        self.nbns = (self.ports.get(NETBIOS_SESSION) == NETBIOS_SESSION) if nbns is None else nbns
        self.nbns_unbound: list[str] = []
        # UDP 443 beside the real 445 (None: when 445 itself is served; a number: that port; False: none)
        if quic is None:
            quic = quic_peer.QUIC_PORT if self.ports.get(SMB_DIRECT_TCP) == SMB_DIRECT_TCP else False
        self.quic_port: int | None = None if quic is False else quic_peer.QUIC_PORT if quic is True else int(quic)
        self.quic: quic_peer.QuicPeers | None = None
        self._datagrams: list = []
        self._servers: list[asyncio.base_events.Server] = []
        self._profiles = {name: profiles.get(name) for name in self.mix.names()}

    # -- address -> host ------------------------------------------------------

    def profile_at(self, index: int) -> profiles.Profile:
        return self._profiles[self.mix.name_at(index)]

    def host_for(self, local_address: str, role: int) -> HostConnection | None:
        try:
            value = int(ipaddress.IPv4Address(local_address))
        except ValueError:
            return None
        index = self.range.index(value)
        if index is None:
            return None
        return HostConnection(self.profile_at(index), role, address=value, start_time=self.start_time)

    # -- binding ------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for port, role in self.ports.items():
                mode = await self._bind_port(loop, port, role)
                self.modes[port] = mode
            if self.nbns:
                await self._bind_nbns(loop)
            if self.quic_port is not None and any(self._profiles[n].quic for n in self._profiles):
                self.quic = quic_peer.QuicPeers(self.range, self.profile_at, self.quic_port)
                await self.quic.start()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "lab: %d addresses %s on %s, mix %s",
            len(self.range),
            self.range,
            ", ".join(f"{p} ({self.modes[p]})" for p in self.ports),
            self.mix,
        )

    async def _bind_port(self, loop, port: int, role: int) -> str:
        factory = lambda: _HostProtocol(self, role)  # noqa: E731
        if self.bind_mode in ("auto", "device"):
            try:
                sock = _device_socket(port)
            except OSError as exc:
                if self.bind_mode == "device":
                    raise OSError(exc.errno, f"cannot bind 0.0.0.0:{port} on lo: {exc.strerror}") from None
                log.warning(
                    "lab: 0.0.0.0:%d on lo unavailable (%s); binding each of the %d addresses instead",
                    port,
                    exc.strerror or exc,
                    len(self.range),
                )
            else:
                self._servers.append(await loop.create_server(factory, sock=sock, backlog=BACKLOG))
                return "device"
        _raise_fd_limit(len(self.range) * len(self.ports) + 256)
        for address in self.range:
            try:
                sock = _address_socket(address, port)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot bind {address}:{port}: {exc.strerror}") from None
            self._servers.append(await loop.create_server(factory, sock=sock, backlog=BACKLOG))
        return "per-address"

    async def _bind_nbns(self, loop) -> None:
        """UDP 137 on each address (the first MAX_ADDRESSES): a port that
        cannot be bound (nmbd holds it, no root) is logged, not fatal."""
        count = min(len(self.range), nbns.MAX_ADDRESSES)
        if count < len(self.range):
            log.warning("lab: NetBIOS name service on the first %d of %d addresses only", count, len(self.range))
        _raise_fd_limit(count * (len(self.ports) + 1) + 256)
        for index in range(count):
            address = self.range.address(index)
            service = nbns.NameService(self.profile_at(index), address)
            try:
                transport, _ = await loop.create_datagram_endpoint(lambda s=service: s, local_addr=(address, nbns.NBNS_PORT))
            except OSError as exc:
                self.nbns_unbound.append(f"{address}:{nbns.NBNS_PORT}/udp: {exc.strerror or exc}")
                continue
            self._datagrams.append(transport)
        if self.nbns_unbound:
            log.warning("lab: no NetBIOS name service on %d address(es), e.g. %s", len(self.nbns_unbound),
                        self.nbns_unbound[0])

    async def stop(self) -> None:
        if self.quic is not None:
            self.quic.stop()
        datagrams, self._datagrams = self._datagrams, []
        for transport in datagrams:
            transport.close()
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    # -- the manifest -------------------------------------------------------

    def write_manifest(self, path: str | os.PathLike) -> None:
        write_manifest(path, self.range, self.mix, self.ports, quic=bool(self.quic and self.quic.bound))


def _listening_socket(address: str, port: int, device: bytes | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if device is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, device)
        sock.bind((address, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _device_socket(port: int) -> socket.socket:
    return _listening_socket("0.0.0.0", port, b"lo\x00")


def _address_socket(address: str, port: int) -> socket.socket:
    if not servable(int(ipaddress.IPv4Address(address))):
        raise OSError(errno.EADDRNOTAVAIL, "the lab binds loopback addresses only")
    return _listening_socket(address, port)


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass
    if target < wanted:
        log.warning("lab: %d sockets wanted but the open-file limit is %d", wanted, target)


def write_manifest(path: str | os.PathLike, lab_range: LabRange, mix: Mix, ports: dict[int, int], today=None,
                   quic: bool = False) -> None:
    """Stream {address: {"profile": name, "expected": {...}}} to `path`.

    One pre-serialised entry per profile, one line per address: memory stays
    flat for any range size.  Written to a temporary file and renamed, so a
    reader never sees half a manifest.
    """
    entries = {
        name: json.dumps({"profile": name, "expected": profiles.get(name).expected_findings(ports, today, quic)})
        for name in mix.names()
    }
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("{\n")
            last = len(lab_range) - 1
            for index in range(len(lab_range)):
                out.write(f'  "{lab_range.address(index)}": {entries[mix.name_at(index)]}')
                out.write(",\n" if index < last else "\n")
            out.write("}\n")
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


async def serve(
    range: str,  # noqa: A002
    ports: Iterable = ROLES,
    mix: str | Mix | None = None,
    manifest_path: str | os.PathLike | None = None,
    bind_mode: str = "auto",
    services_range: str | None = None,
    services_mix: str | None = None,
) -> None:
    """Serve the range until SIGINT or SIGTERM, then close every socket.

    `services_range` also serves the service lab (RDP, HTTP, Kerberos, mail,
    Notes, NBNS profiles of the Shadow Brokers checks) on its real ports."""
    from .services import ServiceLab

    service_lab = ServiceLab(services_range, services_mix) if services_range else None
    lab = Lab(range, ports, mix, bind_mode)
    await lab.start()
    if service_lab is not None:
        try:
            await service_lab.start()
        except BaseException:
            await lab.stop()
            raise
        for address, services in service_lab.bound.items():
            log.info("lab: %s serves %s (%s)", address, service_lab.hosts()[address],
                     ", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in services.items()))
        for line in service_lab.unbound:
            log.warning("lab: service lab cannot bind %s", line)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signals here: the caller cancels us
    try:
        if manifest_path is not None:
            lab.write_manifest(manifest_path)
            log.info("lab: manifest written to %s", manifest_path)
        await stop.wait()
        log.info("lab: stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if service_lab is not None:
            await service_lab.stop()
        await lab.stop()


def run(range: str, ports: Iterable = ROLES, mix=None, manifest_path=None, bind_mode: str = "auto",  # noqa: A002
        services_range: str | None = None, services_mix: str | None = None) -> None:
    """Blocking entry point: `serve` on uvloop when it is installed."""
    coro = serve(range, ports, mix, manifest_path, bind_mode, services_range, services_mix)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
