"""Asyncio servers answering as the real products do, one profile per loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import os
import socket
import ssl
import struct
import tempfile
import time
from functools import lru_cache
from importlib import resources

from ...protocol import nbns, ntlm
from ...protocol.errors import ProtocolError
from ...services import credssp, der, ldap
from ...services.common import ServiceError
from ..mix import parse_range

log = logging.getLogger(__name__)
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
PORTS = {"rdp": [3389], "http": [80], "kerberos": [88], "smtp": [25], "imap": [143], "nbns": [137], "ldap": [389]}
GARBAGE = bytes(range(7, 250, 3)) * 3
IDLE = 10.0
DATE = "Tue, 15 Mar 2011 10:00:00 GMT"


@lru_cache(maxsize=1)
def load_profiles() -> dict:
    data = json.loads(resources.files(__package__).joinpath("profiles.json").read_text(encoding="utf-8"))
    return data



PROFILES = "profiles.json"  # the data file next to this module


def parse_service_mix(text: str | None) -> list[str]:
    """"svc-winxp-rdp=2,svc-silent=1" -> the repeating list of names; None: every profile once."""
    data = load_profiles()
    if not text:
        return list(data["order"])
    out = []
    for part in text.split(","):
        name, _, count = part.strip().partition("=")
        if name not in data["profiles"]:
            raise ValueError(f"unknown service profile {name!r} (known: {', '.join(data['order'])})")
        out += [name] * (int(count) if count else 1)
    return out


def service_ports(profile: dict) -> dict[str, list[int]]:
    """service -> the well-known ports it listens on."""
    out = {}
    for name, conf in profile["services"].items():
        if name == "notes":
            out[name] = list(conf["ports"])
        elif name == "worldclient":
            out[name] = [conf.get("port", 3000)]
        else:
            out[name] = PORTS[name]
    return out


# -- the answers -----------------------------------------------------------


def rdp_answer(conf: dict, request: bytes) -> bytes:
    mode = conf.get("mode", "legacy")
    if mode == "legacy":  # RDP 5.1 / 5.2 (XP, 2003): a bare Connection Confirm
        x224 = bytes([6, 0xD0, 0x00, 0x00, 0x12, 0x34, 0x00])
    else:
        requested = struct.unpack("<I", request[-4:])[0] if len(request) >= 19 and request[-8] == 1 else 0
        if mode == "hybrid-required" and not requested & 2:
            neg = struct.pack("<BBHI", 0x03, 0, 8, 5)
        elif mode in ("hybrid", "hybrid-required") and requested & 2:
            neg = struct.pack("<BBHI", 0x02, 0x1F, 8, 2)
        elif requested & 1:
            neg = struct.pack("<BBHI", 0x02, 0x1F, 8, 1)
        else:
            neg = struct.pack("<BBHI", 0x02, 0x1F, 8, 0)
        x224 = bytes([6 + len(neg), 0xD0, 0x00, 0x00, 0x12, 0x34, 0x00]) + neg
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def rdp_selected_hybrid(answer: bytes) -> bool:
    """Whether rdp_answer() chose HYBRID: then NLA (TLS + CredSSP) follows on the connection."""
    return len(answer) == 19 and answer[11] == 0x02 and answer[15:19] == struct.pack("<I", 2)


@lru_cache(maxsize=1)
def tls_server_context() -> ssl.SSLContext:
    """A TLS server context with a self-signed RSA certificate, as RDP hosts have.

    Made once per process (key generation is the slow part); the PEM files only
    live in a private temporary directory while ssl loads them."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smbsentry-lab")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=180)).sign(key, hashes.SHA256()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="smbsentry-lab-tls-") as tmp:
        path = os.path.join(tmp, "lab.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        ctx.load_cert_chain(path)
    return ctx


async def _credssp(conf: dict, win: dict | None, reader, writer) -> None:
    """NLA after the Connection Confirm: TLS, then the client's TSRequest(NEGOTIATE) is
    answered with a TSRequest(CHALLENGE) from the profile's Windows identity; nothing
    is ever authenticated, the lab waits for the client to hang up."""
    await asyncio.wait_for(writer.start_tls(tls_server_context()), IDLE)
    head = await asyncio.wait_for(reader.readexactly(2), IDLE)
    extra = head[1] & 0x7F if head[1] & 0x80 else 0
    if head[0] != 0x30 or head[1] == 0x80 or extra > 2:  # not a definite-length SEQUENCE we would read
        return
    head += await asyncio.wait_for(reader.readexactly(extra), IDLE)
    n = int.from_bytes(head[2:], "big") if extra else head[1]
    if len(head) + n > credssp.MAX_TSREQUEST:
        return
    try:
        token = credssp.parse(head + await asyncio.wait_for(reader.readexactly(n), IDLE)).token
    except ServiceError:  # a client sending garbage is hung up on
        return
    if not win or ntlm.message_type(token or b"") != 1:
        return
    writer.write(credssp.ts_request(ntlm_challenge(win), conf.get("credssp_version", credssp.VERSION)))
    await writer.drain()
    await asyncio.wait_for(reader.read(4096), 2.0)


IIS6_BODY = (b"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\">\r\n<html><head><title>Under Construction</title></head>"
             b"<body><h1>Under Construction</h1></body></html>")
IIS10_BODY = b"<!DOCTYPE html><html><head><title>IIS Windows Server</title></head><body><img src=\"iisstart.png\"></body></html>"
PROPFIND_BODY = (b'<?xml version="1.0"?><a:multistatus xmlns:b="urn:uuid:c2f41010-65b3-11d1-a29f-00aa00c14882/" '
                 b'xmlns:a="DAV:"><a:response><a:href>http://localhost/</a:href><a:propstat><a:status>HTTP/1.1 200 OK'
                 b"</a:status><a:prop><a:getcontentlength b:dt=\"int\">0</a:getcontentlength><a:creationdate b:dt=\"dateTime.tz\">"
                 b"2011-03-15T10:00:00.000Z</a:creationdate><a:displayname>/</a:displayname><a:resourcetype><a:collection/>"
                 b"</a:resourcetype></a:prop></a:propstat></a:response></a:multistatus>")


def _http(status: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    head = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers] + [f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def http_answer(conf: dict, request: bytes) -> bytes:
    method = request.split(b" ", 1)[0].decode("latin-1", "replace").upper()
    server = conf.get("server", "Microsoft-IIS/6.0")
    if server.startswith("WDaemon"):
        body = (b"<html><head><title>MDaemon WorldClient</title></head><body>"
                b"<form action=\"/WorldClient.dll?View=Main\" method=\"post\">Sign in to WorldClient</form></body></html>")
        return _http("200 OK", [("Server", server), ("Date", DATE), ("Content-Type", "text/html"),
                                ("Cache-Control", "no-cache")], body)
    iis6 = server.endswith("/6.0")
    base = [("Date", DATE), ("Server", server), ("X-Powered-By", "ASP.NET")]
    dav = conf.get("webdav", False)
    if method in ("GET", "HEAD"):
        body = IIS6_BODY if iis6 else IIS10_BODY
        return _http("200 OK", base + [("Content-Type", "text/html"), ("Accept-Ranges", "bytes")],
                     b"" if method == "HEAD" else body)
    if method == "OPTIONS":
        if dav:
            return _http("200 OK", base + [
                ("MS-Author-Via", "MS-FP/4.0,DAV"), ("Accept-Ranges", "none"), ("DASL", "<DAV:sql>"), ("DAV", "1, 2"),
                ("Public", "OPTIONS, TRACE, GET, HEAD, DELETE, PUT, POST, COPY, MOVE, MKCOL, PROPFIND, PROPPATCH, LOCK, UNLOCK, SEARCH"),
                ("Allow", "OPTIONS, TRACE, GET, HEAD, COPY, PROPFIND, SEARCH, LOCK, UNLOCK"), ("Cache-Control", "private")])
        return _http("200 OK", base + [("Allow", "OPTIONS, TRACE, GET, HEAD, POST"),
                                       ("Public", "OPTIONS, TRACE, GET, HEAD, POST")])
    if method == "PROPFIND" and dav:
        return _http("207 Multi-Status", base + [("Content-Type", "text/xml")], PROPFIND_BODY)
    if method == "PROPFIND":
        return _http("405 Method Not Allowed", base + [("Allow", "GET, HEAD, OPTIONS, TRACE"), ("Content-Type", "text/html")],
                     b"<html><head><title>405 - HTTP verb used to access this page is not allowed.</title></head></html>")
    return _http("501 Not Implemented", base + [("Content-Type", "text/html")], b"<html><title>501</title></html>")


def _ktime(t: float) -> bytes:
    return der.generalized_time(time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t)))


def krb_error(code: int, realm: str, sname_realm: str, cname: str | None = None) -> bytes:
    now = time.time()
    fields = [der.ctx(0, der.integer(5)), der.ctx(1, der.integer(30)), der.ctx(4, _ktime(now)),
              der.ctx(5, der.integer(int(now * 1e6) % 1000000)), der.ctx(6, der.integer(code))]
    if cname:
        fields.append(der.ctx(7, der.general_string(realm)))
    fields += [der.ctx(9, der.general_string(realm)),
               der.ctx(10, der.seq(der.ctx(0, der.integer(2)),
                                   der.ctx(1, der.seq(der.general_string("krbtgt"), der.general_string(sname_realm)))))]
    return der.app(30, der.seq(*fields))


def kerberos_answer(conf: dict, request: bytes) -> bytes:
    realm = conf["realm"].upper()
    try:
        n = struct.unpack(">I", request[:4])[0]
        node = der.decode(request[4:4 + n])
        body = node.children[0].child(4)
        req_realm = body.child(2).as_str().upper()
        cname_node = body.child(1).child(1)
        user = cname_node.children[0].as_str().lower()
    except Exception:  # noqa: BLE001 - a KDC answers garbage with a generic error
        msg = krb_error(60, realm, realm)  # KRB_ERR_GENERIC
        return struct.pack(">I", len(msg)) + msg
    if req_realm != realm:
        msg = krb_error(68, realm, req_realm)  # KDC_ERR_WRONG_REALM
    elif user in [u.lower() for u in conf.get("users", [])]:
        msg = krb_error(25, realm, realm, user)  # KDC_ERR_PREAUTH_REQUIRED
    else:
        msg = krb_error(6, realm, realm, user)  # KDC_ERR_C_PRINCIPAL_UNKNOWN
    return struct.pack(">I", len(msg)) + msg


def ldap_answer(conf: dict, request: bytes) -> bytes:
    """The rootDSE to an anonymous base search of the empty DN; a protocol error otherwise
    (what Active Directory answers an anonymous search elsewhere: operationsError 1)."""
    try:
        mid, base, _attrs = ldap.parse_request(request)
    except (ServiceError, ValueError):
        return ldap.search_done(0, 2, "protocolError")
    if base:
        return ldap.search_done(mid, 1, "000004DC: LdapErr: DSID-0C090A5C, comment: In order to perform this operation "
                                        "a successful bind must be completed on the connection., data 0, v1db1")
    return ldap.search_entry(mid, conf["rootdse"]) + ldap.search_done(mid, 0)


def ntlm_challenge(win: dict) -> bytes:
    name, dom = win["netbios_name"], win["netbios_domain"]
    dns_dom = win.get("dns_domain") or dom.lower()
    pairs = [(2, dom.encode("utf-16-le")), (1, name.encode("utf-16-le")), (4, dns_dom.encode("utf-16-le")),
             (3, f"{name.lower()}.{dns_dom}".encode("utf-16-le"))]
    major, minor = (int(x) for x in win["os_version"].split("."))
    if major >= 6:  # MsvAvTimestamp: Vista / 2008 and later send their clock (MS-NLMP 2.2.2.1)
        pairs.append((ntlm.AV_TIMESTAMP, struct.pack("<Q", int(time.time() * 10_000_000) + 116444736000000000)))
    flags = ntlm.NEGOTIATE_UNICODE | ntlm.NEGOTIATE_NTLM | ntlm.NEGOTIATE_EXTENDED_SESSIONSECURITY | ntlm.NEGOTIATE_128 | ntlm.NEGOTIATE_56 | 0x00020000
    return ntlm.challenge(os.urandom(8), flags, dom, pairs, ntlm.Version(major=major, minor=minor, build=win["os_build"]))


def nbns_answer(conf: dict, query: bytes) -> bytes | None:
    """The node status reply (protocol/nbns.py's) of the host `conf` describes, or None
    when `query` is not a query; names [name, suffix, group] and the MAC come from conf."""
    try:
        request = nbns.parse_query(query)
    except ProtocolError:
        return None
    mac = bytes.fromhex(conf.get("mac", "00:00:00:00:00:00").replace(":", ""))
    return nbns.status_reply(request, conf["names"], mac)


# -- the servers --------------------------------------------------------------


async def _readline(reader, limit=4096) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\n"), IDLE)


async def _handle(service: str, conf: dict, win: dict | None, reader, writer) -> None:
    mode = conf.get("mode", "normal")
    try:
        if mode == "silent":
            await asyncio.sleep(IDLE)
            return
        if mode == "garbage":
            writer.write(GARBAGE)
            await writer.drain()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.read(4096), 0.5)
            writer.write(GARBAGE)
            await writer.drain()
            return
        if service == "rdp":
            hdr = await asyncio.wait_for(reader.readexactly(4), IDLE)
            n = struct.unpack(">H", hdr[2:4])[0]
            body = await asyncio.wait_for(reader.readexactly(max(0, min(n, 1024) - 4)), IDLE)
            answer = rdp_answer(conf, hdr + body)
            writer.write(answer)
            await writer.drain()
            if rdp_selected_hybrid(answer):
                await _credssp(conf, win, reader, writer)
            else:
                await asyncio.wait_for(reader.read(4096), 2.0)  # then the client hangs up
        elif service in ("http", "worldclient"):
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE)
                writer.write(http_answer(conf, head))
                await writer.drain()
                if b"connection: close" in head.lower():
                    return
        elif service == "kerberos":
            hdr = await asyncio.wait_for(reader.readexactly(4), IDLE)
            n = struct.unpack(">I", hdr)[0]
            body = await asyncio.wait_for(reader.readexactly(min(n, 65536)), IDLE)
            writer.write(kerberos_answer(conf, hdr + body))
            await writer.drain()
        elif service == "ldap":
            hdr = await asyncio.wait_for(reader.readexactly(2), IDLE)
            n = hdr[1]
            if n & 0x80:
                ext = await asyncio.wait_for(reader.readexactly(min(n & 0x7F, 4)), IDLE)
                n = int.from_bytes(ext, "big")
                hdr += ext
            body = await asyncio.wait_for(reader.readexactly(min(n, 4096)), IDLE)
            writer.write(ldap_answer(conf, hdr + body))
            await writer.drain()
            await asyncio.wait_for(reader.read(4096), 2.0)  # then the client hangs up
        elif service == "smtp":
            await _smtp(conf, win, reader, writer)
        elif service == "imap":
            writer.write(conf["banner"].encode() + b"\r\n")
            await writer.drain()
            while True:
                line = await _readline(reader)
                tag = line.split(b" ", 1)[0]
                if b"LOGOUT" in line.upper():
                    writer.write(b"* BYE logging out\r\n" + tag + b" OK LOGOUT completed\r\n")
                    await writer.drain()
                    return
                if b"CAPABILITY" in line.upper():
                    writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN LITERAL+ NAMESPACE QUOTA UIDPLUS\r\n" + tag + b" OK CAPABILITY completed\r\n")
                else:
                    writer.write(tag + b" BAD Unknown command\r\n")
                await writer.drain()
        elif service == "notes":
            await asyncio.wait_for(reader.read(4096), IDLE)  # Notes RPC waits for the client
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError,
            asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _smtp(conf: dict, win: dict | None, reader, writer) -> None:
    writer.write(b"220 " + conf["banner"].encode() + b"\r\n")
    await writer.drain()
    host = conf["banner"].split()[0]
    while True:
        line = (await _readline(reader)).strip()
        verb = line.split(b" ", 1)[0].upper()
        if verb in (b"EHLO", b"HELO"):
            ext = ["SIZE 10485760", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS"]
            if conf.get("ntlm"):
                ext += ["AUTH NTLM", "X-EXPS GSSAPI NTLM", "8BITMIME", "BINARYMIME", "CHUNKING", "XEXCH50", "XRDST"]
            else:
                ext += ["8BITMIME"]
            lines = [f"{host} Hello [127.0.0.1]"] + ext
            writer.write("".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}\r\n" for i, x in enumerate(lines)).encode())
        elif verb == b"AUTH" and conf.get("ntlm") and win and b"NTLM" in line.upper():
            import base64
            if len(line.split()) < 3:  # "AUTH NTLM" without an initial response
                writer.write(b"334 NTLM supported\r\n")
                await writer.drain()
                if (await _readline(reader)).strip() == b"*":
                    writer.write(b"501 5.7.0 Authentication aborted\r\n")
                    await writer.drain()
                    continue
            writer.write(b"334 " + base64.b64encode(ntlm_challenge(win)) + b"\r\n")
            await writer.drain()
            await _readline(reader)
            writer.write(b"501 5.7.0 Authentication aborted\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 2.0.0 Service closing transmission channel\r\n")
            await writer.drain()
            return
        else:
            writer.write(b"500 5.3.3 Unrecognized command\r\n")
        await writer.drain()


class _Nbns(asyncio.DatagramProtocol):
    def __init__(self, conf: dict) -> None:
        self.conf = conf

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data, addr) -> None:
        mode = self.conf.get("mode", "normal")
        if mode == "silent":
            return
        if mode == "garbage":
            self.transport.sendto(data[:2] + GARBAGE[:40], addr)
            return
        ans = nbns_answer(self.conf, data)
        if ans:
            self.transport.sendto(ans, addr)


class ServiceLab:
    """Every address of `range` serves its profile's services; start(), stop().

    port_map maps a well-known port to the port bound instead (tests without
    the real ports).  Only loopback addresses are ever bound.  A port that
    cannot be bound is listed in `unbound` ("address:port: reason") unless
    strict=True, which raises.
    """

    def __init__(self, range: str, mix: str | list[str] | None = None, port_map: dict[int, int] | None = None,  # noqa: A002
                 strict: bool = False) -> None:
        self.range = parse_range(range)
        self.mix = mix if isinstance(mix, list) else parse_service_mix(mix)
        self.port_map = dict(port_map or {})
        self.strict = strict
        self.unbound: list[str] = []
        self.bound: dict[str, dict[str, list[int]]] = {}
        self._servers: list = []
        self._transports: list = []

    def profile_name(self, index: int) -> str:
        return self.mix[index % len(self.mix)]

    def hosts(self) -> dict[str, str]:
        return {self.range.address(i): self.profile_name(i) for i in range(len(self.range))}

    async def start(self) -> None:
        """Bind every service; on a failure half-way, what was bound is closed again."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        data = load_profiles()
        if any(data["profiles"][n]["services"].get("rdp", {}).get("mode", "").startswith("hybrid") for n in set(self.mix)):
            await loop.run_in_executor(None, tls_server_context)  # the RSA key, before a client's timeout runs
        for i in range(len(self.range)):
            address = self.range.address(i)
            if ipaddress.IPv4Address(address) not in LOOPBACK:
                raise OSError(errno.EADDRNOTAVAIL, "the service lab binds loopback addresses only")
            prof = data["profiles"][self.profile_name(i)]
            win = prof.get("windows")
            for service, ports in service_ports(prof).items():
                conf = prof["services"][service]
                if service == "notes":
                    conf = {**conf}
                for port in ports:
                    real = self.port_map.get(port, port)
                    try:
                        if service == "nbns":
                            t, _ = await loop.create_datagram_endpoint(lambda c=conf: _Nbns(c), local_addr=(address, real),
                                                                       reuse_port=False)
                            self._transports.append(t)
                        else:
                            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                            try:
                                sock.bind((address, real))
                            except BaseException:
                                sock.close()
                                raise
                            srv = await asyncio.start_server(
                                lambda r, w, s=service, c=conf, wi=win: _handle(s, c, wi, r, w), sock=sock)
                            self._servers.append(srv)
                    except OSError as exc:
                        msg = f"{address}:{real}: {exc.strerror or exc}"
                        if self.strict:
                            await self.stop()
                            raise OSError(exc.errno, msg) from None
                        self.unbound.append(msg)
                        continue
                    self.bound.setdefault(address, {}).setdefault(service, []).append(port)

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for s in servers:
            s.close()
        for s in servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        for t in self._transports:
            t.close()
        self._transports = []

    async def __aenter__(self) -> "ServiceLab":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


async def serve_services(range: str, mix: str | list[str] | None = None, port_map: dict[int, int] | None = None) -> None:  # noqa: A002
    """Serve until cancelled."""
    lab = ServiceLab(range, mix, port_map)
    await lab.start()
    for line in lab.unbound:
        log.warning("service lab: cannot bind %s", line)
    try:
        await asyncio.Event().wait()
    finally:
        await lab.stop()
