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
import re
import socket
import ssl
import threading
import time

from celery import Celery, Task

from ..protocol.transport import SMB_PORTS
from . import shared, signing
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
        self.nonces = None   # the store every engine on the broker shares (shared.py), made with the app
        self._nonce_lock = threading.Lock()
        self.db = os.environ.get("SMBSENTRY_ENGINE_DB") or None
        self.name = ""
        self.owner = ""
        self.consumer = None  # the worker's consumer (its queues), set when the worker is ready
        self.shards_done = 0
        self.hosts_scanned = 0
        self.refused = 0
        self.current: dict | None = None

    def nonce_store(self, celery_app: Celery):
        with self._nonce_lock:
            if self.nonces is None:
                self.nonces = shared.nonce_store(celery_app, self.max_age + signing.CLOCK_SKEW)
                self.owner = shared.owner_token(self.identity()["name"])
            return self.nonces

    def queues(self) -> list[str]:
        try:
            return sorted(q.name for q in self.consumer.task_consumer.queues)
        except AttributeError:   # not started yet, or a bare call outside a worker
            return [self.queue] if self.queue else []

    def info(self) -> dict:
        """What `smbsentry engines` shows and what the central side checks before it sends a shard."""
        return {**self.identity(), "queues": self.queues(), "allowed": [str(n) for n in self.allowed],
                "concurrency": self.concurrency, "shards_done": self.shards_done, "hosts_scanned": self.hosts_scanned,
                "refused": self.refused, "current": self.current, "key_ok": self.key_error is None,
                "key_id": signing.key_id(self.key) if self.key else None, "key_error": self.key_error,
                "pid": os.getpid(), "at": time.time()}

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


REPLY_RE = re.compile(r"^smbsentry\.results\.[A-Za-z0-9_.-]{1,100}$")
UNSIGNED_REASONS = ("no-key", "unsigned", "bad-signature")   # refusals an engine cannot sign
# a reply that cannot be written within this policy aborts the shard (the central side sends it again)
PUBLISH_RETRY = {"max_retries": 4, "interval_start": 0.5, "interval_step": 1.0, "interval_max": 3.0}


class Busy(Exception):
    """Another live engine runs this very job: try again once its lease could have lapsed."""


class Reply:
    """Messages to the central side's reply queue, over the broker connection.

    Signed with the shared key; a refusal of a job this engine could not authenticate goes out
    unsigned (`key` empty): the central side accepts such a message only as the end of a shard
    it is waiting for, never as a result."""

    def __init__(self, celery_app: Celery, name: str, key: bytes, base: dict) -> None:
        self.key = key
        self.base = base
        self._lock = threading.Lock()
        # a pooled connection: a new one per shard cost ~4 ms of the shard's round trip
        self.conn = celery_app.pool.acquire(block=True, timeout=30)
        try:
            self.conn.ensure_connection(max_retries=3)
            self.queue = self.conn.SimpleQueue(name)
        except Exception as exc:  # noqa: BLE001 - redis-py's errors are not OSErrors: make it one (Celery retries)
            self.conn.close()     # a dead connection goes back to the pool closed: it reconnects when used
            self.conn.release()
            raise shared.SharedStateError(f"cannot open the reply queue {name}: {exc}") from None

    def send(self, kind: str, **fields) -> None:
        msg = {**self.base, "type": kind, "sent_at": time.time(), **fields}
        body = {"msg": msg, "sig": signing.sign(self.key, msg) if self.key else ""}
        with self._lock:
            self.queue.put(body, serializer="json", retry=True, retry_policy=PUBLISH_RETRY)

    def close(self) -> None:
        with self._lock:
            try:
                self.queue.close()
            finally:
                self.conn.release()


def _scan_options(opts: dict):
    """A signed job's options as the scanner's ScanOptions, built where every scan builds them (app/scanprep.py)."""
    from ..app.scanprep import scan_options, select_checks

    return scan_options(select_checks(opts.get("checks", "default")), tuple(int(p) for p in opts.get("ports", SMB_PORTS)),
                        timeout=float(opts.get("timeout", 5.0)), dialects=opts.get("dialects", "range"),
                        user=opts.get("user") or None, password=opts.get("password") or "",
                        domain=opts.get("domain") or "")


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


def _reply_for(celery_app: Celery, cfg: EngineConfig, job: object, key: bytes) -> Reply | None:
    """The reply channel a job names, if it names a well-formed one (a forged job cannot pick any queue)."""
    if not isinstance(job, dict) or not isinstance(job.get("reply"), str) or not REPLY_RE.match(job["reply"]):
        return None
    base = {"scan_id": job.get("scan_id"), "shard": job.get("shard"), "nonce": job.get("nonce"), "engine": cfg.identity()}
    return Reply(celery_app, job["reply"], key, base)


def _refuse_unsigned(celery_app: Celery, cfg: EngineConfig, job: object, reason: str, detail: str) -> dict:
    """A job this engine cannot authenticate: logged, and said (unsigned) to the reply queue it names."""
    try:
        reply = _reply_for(celery_app, cfg, job, b"")
    except shared.SharedStateError:   # broker trouble: the refusal is logged here in any case
        log.debug("cannot open the reply queue", exc_info=True)
        reply = None
    try:
        return refuse(cfg, job, reason, detail, reply)
    finally:
        if reply is not None:
            reply.close()


def run_job(celery_app: Celery, job: object, sig: object, hostname: str = "") -> dict:
    """Check and run one shard; every refusal is logged and reported to the central side."""
    cfg = engine_config()
    if hostname:
        cfg.name = hostname
    if cfg.key_error:
        return _refuse_unsigned(celery_app, cfg, job, "no-key", cfg.key_error)
    try:
        signing.verify(cfg.key, job, sig)
    except SignatureError as exc:
        return _refuse_unsigned(celery_app, cfg, job, exc.reason,
                                exc.detail + " (the engine's key differs from the central side's, or the job was altered)")
    reply = _reply_for(celery_app, cfg, job, cfg.key)
    if reply is None:
        return refuse(cfg, job, "malformed", "job field 'reply' missing or not a reply queue")
    try:
        try:
            signing.check_job(cfg.key, job, sig, cfg.max_age)
        except SignatureError as exc:
            return refuse(cfg, job, exc.reason, exc.detail, reply)
        if not cfg.allowed:
            return refuse(cfg, job, "out-of-range", "this engine allows no ranges (--allow)", reply)
        outside = cfg.outside(job["targets"])
        if outside:
            more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
            return refuse(cfg, job, "out-of-range",
                          f"{', '.join(outside[:5])}{more} outside {', '.join(map(str, cfg.allowed))}", reply)
        plan = None
        if "sweep" in job:  # a discovery shard: what it walks outside --allow is reported, not refused (sweep.py)
            from .sweep import SweepError, plan as sweep_plan

            try:
                plan = sweep_plan(job["sweep"], cfg.allowed)
            except SweepError as exc:
                return refuse(cfg, job, "malformed", str(exc), reply)
        return _claimed(celery_app, cfg, job, reply, plan)
    finally:
        reply.close()


def _claimed(celery_app: Celery, cfg: EngineConfig, job: dict, reply: Reply, plan=None) -> dict:
    """Run the job once its nonce is claimed in the store every engine shares; release the claim if it fails."""
    nonces = cfg.nonce_store(celery_app)
    state = nonces.claim(job["nonce"], cfg.owner)
    if state == shared.DONE:
        return refuse(cfg, job, "replay", f"nonce {job['nonce']} already run", reply)
    if state == shared.BUSY:
        log.info("engine %s: scan %s shard %s is being run by another engine; trying again later",
                 cfg.identity()["name"], job["scan_id"], job["shard"])
        raise Busy(job["nonce"])
    if state == shared.TAKEOVER:
        log.warning("engine %s: scan %s shard %s: its earlier engine stopped mid-shard; running it here",
                    cfg.identity()["name"], job["scan_id"], job["shard"])
    try:
        done = _scan(cfg, job, reply, lambda: nonces.renew(job["nonce"], cfg.owner), plan)
    except BaseException:
        try:
            nonces.release(job["nonce"], cfg.owner)
        except shared.SharedStateError:
            log.debug("could not release the claim (it lapses by itself)", exc_info=True)
        raise
    try:
        nonces.finish(job["nonce"], cfg.owner)
    except shared.SharedStateError:
        log.warning("could not mark shard %s done in the nonce store", job["shard"])
    return done


def _scan(cfg: EngineConfig, job: dict, reply: Reply, renew=lambda: True, plan=None) -> dict:
    from ..scan.engine import Engine
    from ..discover.targets import Target

    options = _scan_options(job["options"])
    ident = cfg.identity()
    if plan is None:
        log.info("engine %s: scan %s shard %s: %d targets", ident["name"], job["scan_id"], job["shard"], len(job["targets"]))
    else:
        log.info("engine %s: scan %s shard %s: discovery shard %d of %d, %d addresses of its queue inside --allow",
                 ident["name"], job["scan_id"], job["shard"], plan.index, plan.count, plan.cover.count)
    cfg.current = {"scan_id": job["scan_id"], "shard": job["shard"], "targets": len(job["targets"]), "started": time.time()}
    reply.send("start", targets=len(job["targets"]), **({"sweep": [plan.index, plan.count]} if plan else {}))
    store = None
    if cfg.db:
        from ..store import Store
        store = Store.open(cfg.db)
    reported = 0

    def on_result(result) -> None:
        nonlocal reported
        host = result.to_dict()
        host["engine"] = ident
        reply.send("host", host=host)
        reported += 1
        if store is not None:
            store.add_host(job["scan_id"], host)

    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                if not renew():
                    log.warning("engine %s: lost the claim on shard %s (the broker restarted, or another engine "
                                "took the shard over after a pause longer than the lease)",
                                ident["name"], job["shard"])
                reply.send("beat")
            except Exception:  # noqa: BLE001
                log.debug("heartbeat failed", exc_info=True)

    beater = threading.Thread(target=beat, name="smbsentry-engine-beat", daemon=True)
    beater.start()
    rate = job["options"].get("rate") or None
    said: dict = {}
    try:
        if plan is None:
            engine = Engine(options, concurrency=max(1, min(cfg.concurrency, len(job["targets"]))), rate=rate,
                            on_result=on_result)
            summary = asyncio.run(engine.run(Target(a) for a in job["targets"]))
        else:
            from . import sweep

            summary, said = asyncio.run(sweep.run(plan, options, concurrency=cfg.concurrency, rate=rate,
                                                  on_result=on_result))
            log.info("engine %s: shard %s: %s", ident["name"], job["shard"], said["discovery"]["mode_line"])
    finally:
        stop.set()
        beater.join(5)
        cfg.current = None
        if store is not None:
            store.close()
    cfg.shards_done += 1
    cfg.hosts_scanned += summary.targets
    done = {"targets": summary.targets, "with_smb": summary.with_smb, "elapsed": summary.elapsed,
            "connections": summary.connections, "reported": reported, **said}
    reply.send("done", summary=done)
    log.info("engine %s: shard %s done: %d targets, %d with SMB, %.2fs", ident["name"], job["shard"],
             summary.targets, summary.with_smb, summary.elapsed)
    return done


def report_failure(celery_app: Celery, job: object, sig: object, exc: BaseException) -> None:
    """A shard that failed for good here (its retries spent): tell the central side, which sends it again."""
    cfg = engine_config()
    try:
        signing.verify(cfg.key, job, sig)
        reply = _reply_for(celery_app, cfg, job, cfg.key)
    except (SignatureError, shared.SharedStateError):
        return
    if reply is None:
        return
    try:
        reply.send("error", detail=" ".join(f"{type(exc).__name__}: {exc}".split())[:300])
    except Exception:  # noqa: BLE001 - the broker is gone: the central side's stall timer covers it
        log.debug("could not report the failure", exc_info=True)
    finally:
        reply.close()


class ShardTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # noqa: ARG002 - Celery's signature
        job, sig = (list(args or []) + [None, None])[:2]
        report_failure(self.app, job, sig, exc)


@app.task(name=TASK_NAME, bind=True, base=ShardTask, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=(ConnectionError, OSError), retry_backoff=2, retry_kwargs={"max_retries": 3})
def scan_shard(self, job, sig):
    try:
        return run_job(self.app, job, sig, self.request.hostname or "")
    except Busy:
        # the job goes stale after max_age: that bounds the retries
        cfg = engine_config()
        raise self.retry(countdown=shared.LEASE_SECONDS, max_retries=int(cfg.max_age // shared.LEASE_SECONDS) + 2) from None


# `smbsentry engines` asks every engine for this (celery inspect smbsentry_info)
try:
    from celery.worker.control import inspect_command

    @inspect_command()
    def smbsentry_info(state, **_kwargs):  # noqa: ARG001
        return engine_config().info()
except ImportError:  # pragma: no cover
    pass


_presence: shared.Presence | None = None


def install_engine() -> None:
    """Engine start-up: uvloop for the scanner's loops, the configuration read now."""
    from ..scan.engine import install_uvloop

    install_uvloop()
    cfg = engine_config()
    if cfg.key_error:
        log.error("engine: %s: every job will be refused", cfg.key_error)
    if not cfg.allowed:
        log.error("engine: no allowed ranges (SMBSENTRY_ENGINE_ALLOW / --allow): every job will be refused")


def start_presence(celery_app: Celery, consumer=None, hostname: str = "") -> None:
    """When the worker is ready: its queues known, announce it (Redis brokers) and say how replays are checked."""
    global _presence
    cfg = engine_config()
    cfg.consumer = consumer
    if hostname:
        cfg.name = hostname
    if not shared.is_redis(str(celery_app.conf.broker_url)):
        log.warning("engine %s: replay protection is per engine process with this broker (nonces are shared "
                    "between engines only through a Redis broker)", cfg.identity()["name"])
    _presence = shared.Presence(celery_app, cfg.identity()["name"], cfg.info, HEARTBEAT_SECONDS)
    _presence.start()


def stop_presence() -> None:
    global _presence
    if _presence is not None:
        _presence.stop()
        _presence = None


try:
    from celery.signals import worker_init, worker_ready, worker_shutdown

    @worker_init.connect
    def _on_worker_init(**_kwargs) -> None:
        install_engine()

    @worker_ready.connect
    def _on_worker_ready(sender=None, **_kwargs) -> None:
        start_presence(getattr(sender, "app", app), sender, getattr(sender, "hostname", "") or "")

    @worker_shutdown.connect
    def _on_worker_shutdown(**_kwargs) -> None:
        stop_presence()
except ImportError:  # pragma: no cover
    pass
