"""The Celery application shared by the central side and the scan engines.

    celery -A smbsentry.engines.app worker -Q seg1 -P threads -c 1     # or: smbsentry engine --queue seg1

Configuration comes from the environment so a bare `celery -A` worker and
`smbsentry engine` behave the same:

    SMBSENTRY_BROKER             broker URL (redis://, rediss://, amqp://, amqps://; credentials in the URL)
    SMBSENTRY_BROKER_SSL         JSON object passed through as broker_use_ssl (ssl_cert_reqs, ssl_ca_certs, ...)
    SMBSENTRY_ENGINE_KEY_FILE    shared HMAC key file
    SMBSENTRY_ENGINE_ALLOW       CIDRs this engine may scan, comma separated (required)
    SMBSENTRY_ENGINE_QUEUE       the engine's queue (its identity; -Q decides what it consumes)
    SMBSENTRY_ENGINE_CONCURRENCY hosts in flight per shard (default 256)
    SMBSENTRY_ENGINE_MAX_AGE     seconds after which a job is stale (default 600)
    SMBSENTRY_VISIBILITY_TIMEOUT seconds before an unacknowledged shard is delivered again (Redis; default 1800)
    SMBSENTRY_ENGINE_DB          optional store URL the engine also writes its results to
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time

from celery import Celery

from . import signing
from .signing import SignatureError

log = logging.getLogger("smbsentry.engines")

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
TASK_NAME = "smbsentry.scan_shard"
HEARTBEAT_SECONDS = 2.0
_SSL_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE,
             "CERT_REQUIRED": ssl.CERT_REQUIRED, "CERT_OPTIONAL": ssl.CERT_OPTIONAL, "CERT_NONE": ssl.CERT_NONE}


def broker_url(url: str | None = None) -> str:
    return url or os.environ.get("SMBSENTRY_BROKER") or DEFAULT_BROKER


def ssl_options(url: str, options: dict | str | None = None) -> dict | None:
    """broker_use_ssl for a TLS URL: the given options (or SMBSENTRY_BROKER_SSL JSON) passed through;
    for rediss:// with nothing given, certificates are verified (ssl_cert_reqs=required)."""
    if options is None:
        options = os.environ.get("SMBSENTRY_BROKER_SSL") or None
    if isinstance(options, str):
        options = json.loads(options)
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("rediss", "amqps") and not options:
        return None
    opts = dict(options or {})
    if scheme == "rediss":
        opts.setdefault("ssl_cert_reqs", ssl.CERT_REQUIRED)
    if isinstance(opts.get("ssl_cert_reqs"), str):
        opts["ssl_cert_reqs"] = _SSL_REQS[opts["ssl_cert_reqs"]]
    if isinstance(opts.get("cert_reqs"), str):
        opts["cert_reqs"] = _SSL_REQS[opts["cert_reqs"]]
    return opts or True


def configure(app: Celery, url: str | None = None, ssl_opts: dict | str | None = None) -> Celery:
    url = broker_url(url)
    visibility = float(os.environ.get("SMBSENTRY_VISIBILITY_TIMEOUT", "1800"))
    app.conf.update(
        broker_url=url,
        broker_use_ssl=ssl_options(url, ssl_opts),
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # sweep for shards of dead engines often enough for a short visibility timeout
            "unacked_restore_interval": max(1, min(10, int(visibility // 2) or 1)),
            "unacked_restore_throttle": 1,
            "fanout_prefix": True,
            "fanout_patterns": True,
        },
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue="smbsentry",
    )
    return app


def make_app(url: str | None = None, ssl_opts: dict | str | None = None) -> Celery:
    return configure(Celery("smbsentry"), url, ssl_opts)


app = make_app()


# ---------------------------------------------------------------- the engine side
class EngineConfig:
    """What this engine may do; read from the environment when the worker starts."""

    def __init__(self) -> None:
        self.queue = os.environ.get("SMBSENTRY_ENGINE_QUEUE", "")
        self.concurrency = int(os.environ.get("SMBSENTRY_ENGINE_CONCURRENCY", "256"))
        self.max_age = float(os.environ.get("SMBSENTRY_ENGINE_MAX_AGE", str(signing.DEFAULT_MAX_AGE)))
        allow = [a.strip() for a in os.environ.get("SMBSENTRY_ENGINE_ALLOW", "").split(",") if a.strip()]
        self.allowed = [ipaddress.ip_network(a, strict=False) for a in allow]
        self.key_error: str | None = None
        try:
            self.key = signing.load_key(None)
        except SignatureError as exc:
            self.key, self.key_error = b"", str(exc)
        self.nonces = signing.NonceCache(self.max_age + signing.CLOCK_SKEW)
        self.db = os.environ.get("SMBSENTRY_ENGINE_DB") or None
        self.name = ""
        self.shards_done = 0
        self.hosts_scanned = 0
        self.refused = 0
        self.current: dict | None = None

    def identity(self) -> dict:
        return {"name": self.name or f"{self.queue}@{socket.gethostname()}", "queue": self.queue,
                "hostname": socket.gethostname()}

    def outside(self, targets: list[str]) -> list[str]:
        bad = []
        for t in targets:
            try:
                a = ipaddress.ip_address(str(t).split("%", 1)[0])
            except ValueError:
                bad.append(str(t))
                continue
            if not any(a.version == n.version and a in n for n in self.allowed):
                bad.append(str(t))
        return bad


_config: EngineConfig | None = None
_config_lock = threading.Lock()


def engine_config() -> EngineConfig:
    global _config
    with _config_lock:
        if _config is None:
            _config = EngineConfig()
        return _config


def reset_engine_config() -> None:
    global _config
    with _config_lock:
        _config = None


class Reply:
    """Signed messages to the central side's reply queue, over the broker connection."""

    def __init__(self, celery_app: Celery, name: str, key: bytes, base: dict) -> None:
        self.key = key
        self.base = base
        self._lock = threading.Lock()
        self.conn = celery_app.connection_for_write()
        self.queue = self.conn.SimpleQueue(name)

    def send(self, kind: str, **fields) -> None:
        msg = {**self.base, "type": kind, "sent_at": time.time(), **fields}
        body = {"msg": msg, "sig": signing.sign(self.key, msg)}
        with self._lock:
            self.queue.put(body, serializer="json")

    def close(self) -> None:
        with self._lock:
            try:
                self.queue.close()
            finally:
                self.conn.release()


def _scan_options(opts: dict):
    from ..checks.registry import select
    from ..scan.fingerprint import ScanOptions
    from ..scan.host import split_ports
    from ..scan.session import Credentials

    creds = None
    if opts.get("user"):
        creds = Credentials(opts["user"], opts.get("password") or "", opts.get("domain") or "")
    checks = tuple(select(opts.get("checks", "default")))
    smb_ports, service_ports = split_ports(tuple(int(p) for p in opts.get("ports", (445, 139))), checks)
    return ScanOptions(
        ports=smb_ports, timeout=float(opts.get("timeout", 5.0)), credentials=creds,
        dialect_method=opts.get("dialects", "range"), checks=checks, service_ports=service_ports,
    )


def refuse(cfg: EngineConfig, job: object, reason: str, detail: str, reply: Reply | None = None) -> dict:
    cfg.refused += 1
    shard = job.get("shard") if isinstance(job, dict) else None
    scan_id = job.get("scan_id") if isinstance(job, dict) else None
    log.warning("engine %s refused job (scan %s, shard %s): %s: %s", cfg.identity()["name"], scan_id, shard, reason, detail)
    if reply is not None:
        try:
            reply.send("refused", reason=reason, detail=detail)
        except Exception:  # noqa: BLE001 - a refusal must not turn into a retry
            log.exception("could not report the refusal")
    return {"refused": reason, "detail": detail}


def run_job(celery_app: Celery, job: object, sig: object, hostname: str = "") -> dict:
    """Check and run one shard; every refusal is logged (and reported when the job is authentic)."""
    cfg = engine_config()
    if hostname:
        cfg.name = hostname
    if cfg.key_error:
        return refuse(cfg, job, "no-key", cfg.key_error)
    try:
        signing.verify(cfg.key, job, sig)
    except SignatureError as exc:
        return refuse(cfg, job, exc.reason, exc.detail)   # not authentic: nothing is sent anywhere
    reply = Reply(celery_app, job["reply"], cfg.key, {
        "scan_id": job.get("scan_id"), "shard": job.get("shard"), "nonce": job.get("nonce"), "engine": cfg.identity()})
    try:
        try:
            signing.check_job(cfg.key, job, sig, cfg.nonces, cfg.max_age)
        except SignatureError as exc:
            return refuse(cfg, job, exc.reason, exc.detail, reply)
        if not cfg.allowed:
            return refuse(cfg, job, "out-of-range", "this engine allows no ranges (--allow)", reply)
        outside = cfg.outside(job["targets"])
        if outside:
            more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
            return refuse(cfg, job, "out-of-range",
                          f"{', '.join(outside[:5])}{more} outside {', '.join(map(str, cfg.allowed))}", reply)
        try:
            return _scan(cfg, job, reply)
        except BaseException:
            cfg.nonces.forget(job["nonce"])
            raise
    finally:
        reply.close()


def _scan(cfg: EngineConfig, job: dict, reply: Reply) -> dict:
    from ..scan.engine import Engine
    from ..scan.targets import Target

    options = _scan_options(job["options"])
    ident = cfg.identity()
    log.info("engine %s: scan %s shard %s: %d targets", ident["name"], job["scan_id"], job["shard"], len(job["targets"]))
    cfg.current = {"scan_id": job["scan_id"], "shard": job["shard"], "targets": len(job["targets"]), "started": time.time()}
    reply.send("start", targets=len(job["targets"]))
    store = None
    if cfg.db:
        from ..store import Store
        store = Store.open(cfg.db)

    def on_result(result) -> None:
        host = result.to_dict()
        host["engine"] = ident
        reply.send("host", host=host)
        if store is not None:
            store.add_host(job["scan_id"], host)

    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                reply.send("beat")
            except Exception:  # noqa: BLE001
                log.debug("heartbeat failed", exc_info=True)

    beater = threading.Thread(target=beat, name="smbsentry-engine-beat", daemon=True)
    beater.start()
    rate = job["options"].get("rate") or None
    engine = Engine(options, concurrency=max(1, min(cfg.concurrency, len(job["targets"]))), rate=rate, on_result=on_result)
    try:
        summary = asyncio.run(engine.run(Target(a) for a in job["targets"]))
    finally:
        stop.set()
        beater.join(5)
        cfg.current = None
        if store is not None:
            store.close()
    cfg.shards_done += 1
    cfg.hosts_scanned += summary.targets
    done = {"targets": summary.targets, "with_smb": summary.with_smb, "elapsed": summary.elapsed,
            "connections": summary.connections}
    reply.send("done", summary=done)
    log.info("engine %s: shard %s done: %d targets, %d with SMB, %.2fs", ident["name"], job["shard"],
             summary.targets, summary.with_smb, summary.elapsed)
    return done


@app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=(ConnectionError, OSError), retry_backoff=2, retry_kwargs={"max_retries": 3})
def scan_shard(self, job, sig):
    return run_job(self.app, job, sig, self.request.hostname or "")


# `smbsentry engines` asks every engine for this (celery inspect smbsentry_info)
try:
    from celery.worker.control import inspect_command

    @inspect_command()
    def smbsentry_info(state, **_kwargs):  # noqa: ARG001
        cfg = engine_config()
        return {"identity": cfg.identity(), "allowed": [str(n) for n in cfg.allowed], "concurrency": cfg.concurrency,
                "shards_done": cfg.shards_done, "hosts_scanned": cfg.hosts_scanned, "refused": cfg.refused,
                "current": cfg.current, "key_ok": cfg.key_error is None}
except ImportError:  # pragma: no cover
    pass


def install_engine() -> None:
    """Engine start-up: uvloop for the scanner's loops, the configuration read now."""
    from ..scan.engine import install_uvloop

    install_uvloop()
    cfg = engine_config()
    if cfg.key_error:
        log.error("engine: %s: every job will be refused", cfg.key_error)
    if not cfg.allowed:
        log.error("engine: no allowed ranges (SMBSENTRY_ENGINE_ALLOW / --allow): every job will be refused")


try:
    from celery.signals import worker_init

    @worker_init.connect
    def _on_worker_init(**_kwargs) -> None:
        install_engine()
except ImportError:  # pragma: no cover
    pass
