"""The central side: shard, route, sign, send, and write every result as it arrives.

At most `window` shards are out at once, so a huge target set is streamed.
Each shard is a Celery task on the queue of the engine that owns its range;
engines send signed messages (start, host, beat, done, refused) to a reply
queue on the same broker, which this side drains.  A shard is finished when a
`done` arrives for it; host results are written to the store on arrival, once
per address (the store's add_host is idempotent per scan and address too), so
a shard that runs twice (its engine died, Celery delivered it again) leaves no
duplicates.  A shard whose engine went silent for `stall_timeout` seconds, or
that was refused as stale, is signed again with a new nonce and re-sent.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from celery import Celery

from . import signing
from .app import TASK_NAME
from .routes import Router, Shard, Sharding, shards
from .signing import SignatureError

log = logging.getLogger("smbsentry.engines.central")


@dataclass(slots=True)
class ShardState:
    shard: Shard
    nonces: set = field(default_factory=set)
    attempts: int = 0
    sent_at: float = 0.0
    started_at: float | None = None
    last_seen: float | None = None
    engine: dict | None = None


@dataclass(slots=True)
class DistributedSummary:
    shards: int = 0
    shards_done: int = 0
    shards_failed: int = 0
    resent: int = 0
    targets: int = 0
    with_smb: int = 0
    services_only: int = 0  # SMB closed, another probed service answered (--checks all)
    duplicates: int = 0
    refused: dict = field(default_factory=dict)
    bad_messages: int = 0
    unrouted: list = field(default_factory=list)
    unresolved: list = field(default_factory=list)
    elapsed: float = 0.0
    queue_overhead: list = field(default_factory=list)  # per shard: seconds from send to start
    shard_seconds: list = field(default_factory=list)   # per shard: seconds from send to done
    engines: dict = field(default_factory=dict)          # engine name -> hosts reported
    timed_out: bool = False

    @property
    def complete(self) -> bool:
        return (not self.timed_out and self.shards_failed == 0 and self.shards_done == self.shards
                and not self.unrouted and not self.unresolved)

    @property
    def hosts_per_second(self) -> float:
        return self.targets / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict:
        n = len(self.queue_overhead)
        return {
            "shards": self.shards, "shards_done": self.shards_done, "shards_failed": self.shards_failed,
            "resent": self.resent, "targets": self.targets, "with_smb": self.with_smb, "services_only": self.services_only, "duplicates": self.duplicates,
            "refused": self.refused, "bad_messages": self.bad_messages, "unrouted": len(self.unrouted),
            "unresolved": len(self.unresolved), "elapsed": round(self.elapsed, 3), "engines": self.engines,
            "queue_overhead_mean": round(sum(self.queue_overhead) / n, 4) if n else None,
            "complete": self.complete,
        }


class DistributedScan:
    def __init__(self, app: Celery, key: bytes, router: Router, options: dict, *, store=None, scan_id: int = 0,
                 shard_size: int = 256, window: int = 64, stall_timeout: float = 120.0, max_attempts: int = 3,
                 timeout: float | None = None, on_host: Callable[[dict], None] | None = None,
                 on_message: Callable[[dict], None] | None = None) -> None:
        self.app = app
        self.key = key
        self.router = router
        self.options = dict(options)
        self.store = store
        self.scan_id = scan_id
        self.shard_size = shard_size
        self.window = max(1, window)
        self.stall_timeout = stall_timeout
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.on_host = on_host
        self.on_message = on_message
        self.reply = f"smbsentry.results.{scan_id}.{secrets.token_hex(6)}"
        self.summary = DistributedSummary()
        self.seen: set[str] = set()
        self.out: dict[int, ShardState] = {}
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    # ------------------------------------------------------------ sending
    def _send(self, st: ShardState) -> None:
        job = signing.new_job(self.scan_id, st.shard.id, st.shard.targets, self.options, self.reply)
        sig = signing.sign(self.key, job)
        st.nonces.add(job["nonce"])
        st.attempts += 1
        st.sent_at = time.monotonic()
        st.started_at = st.last_seen = None
        self.app.send_task(TASK_NAME, args=[job, sig], queue=st.shard.queue)

    def _resend(self, st: ShardState, why: str) -> None:
        if st.attempts >= self.max_attempts:
            log.error("shard %s (%s): giving up after %d attempts (%s)", st.shard.id, st.shard.queue, st.attempts, why)
            self.summary.shards_failed += 1
            self.out.pop(st.shard.id, None)
            return
        log.warning("shard %s (%s): sending again (%s)", st.shard.id, st.shard.queue, why)
        self.summary.resent += 1
        self._send(st)

    # ------------------------------------------------------------ receiving
    def _handle(self, body: object) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("msg"), dict):
            self.summary.bad_messages += 1
            return
        msg = body["msg"]
        try:
            signing.verify(self.key, msg, body.get("sig"))
        except SignatureError as exc:
            log.warning("dropped a reply: %s", exc)
            self.summary.bad_messages += 1
            return
        if msg.get("scan_id") != self.scan_id:
            self.summary.bad_messages += 1
            return
        if self.on_message:
            self.on_message(msg)
        st = self.out.get(msg.get("shard"))
        if st is not None and msg.get("nonce") not in st.nonces:
            st = None  # a message for an attempt we never sent
        kind = msg.get("type")
        now = time.monotonic()
        if kind == "host":
            host = msg.get("host")
            if not isinstance(host, dict) or "address" not in host:
                self.summary.bad_messages += 1
                return
            address = str(host["address"])
            if address in self.seen:
                self.summary.duplicates += 1
                return
            self.seen.add(address)
            if any(state == "open" for state in (host.get("ports") or {}).values()):
                self.summary.with_smb += 1
            elif host.get("services"):
                self.summary.services_only += 1
            name = (msg.get("engine") or {}).get("name", "?")
            self.summary.engines[name] = self.summary.engines.get(name, 0) + 1
            if self.store is not None:
                self.store.add_host(self.scan_id, host)
            if self.on_host:
                self.on_host(host)
            if st is not None:
                st.last_seen = now
        elif st is None:
            return  # late news of a finished shard, or of an attempt we replaced
        elif kind in ("start", "beat"):
            if kind == "start":
                st.started_at = now
                st.engine = msg.get("engine")
                self.summary.queue_overhead.append(now - st.sent_at)
            st.last_seen = now
        elif kind == "done":
            self.summary.shards_done += 1
            self.summary.targets += int((msg.get("summary") or {}).get("targets", 0))
            self.summary.shard_seconds.append(now - st.sent_at)
            self.out.pop(st.shard.id, None)
        elif kind == "refused":
            reason = str(msg.get("reason"))
            self.summary.refused[reason] = self.summary.refused.get(reason, 0) + 1
            log.warning("shard %s refused by %s: %s: %s", st.shard.id, (msg.get("engine") or {}).get("name"),
                        reason, msg.get("detail"))
            if reason == "replay":
                return  # that engine is already running (or ran) this very job
            if reason == "stale":
                self._resend(st, "stale")
            else:
                self.summary.shards_failed += 1
                self.out.pop(st.shard.id, None)

    def _check_stalled(self) -> None:
        if not self.stall_timeout:
            return
        now = time.monotonic()
        for st in list(self.out.values()):
            if st.last_seen is not None and now - st.last_seen > self.stall_timeout:
                self._resend(st, f"engine {(st.engine or {}).get('name')} silent for {now - st.last_seen:.0f}s")

    # ------------------------------------------------------------ the loop
    def run(self, targets: Iterable) -> DistributedSummary:
        start = time.monotonic()
        stats = Sharding()
        gen = shards(targets, self.router, self.shard_size, stats)
        exhausted = False
        with self.app.connection_for_write() as conn:
            queue = conn.SimpleQueue(self.reply)
            try:
                while not self._stopping:
                    while not exhausted and len(self.out) < self.window:
                        shard = next(gen, None)
                        if shard is None:
                            exhausted = True
                            break
                        st = ShardState(shard)
                        self.out[shard.id] = st
                        self.summary.shards += 1
                        self._send(st)
                    if exhausted and not self.out:
                        break
                    if self.timeout is not None and time.monotonic() - start > self.timeout:
                        self.summary.timed_out = True
                        break
                    try:
                        message = queue.get(block=True, timeout=0.5)
                    except queue.Empty:
                        self._check_stalled()
                        continue
                    message.ack()
                    self._handle(message.payload)
                    # drain what is already there before looking at the window again
                    for _ in range(1000):
                        try:
                            message = queue.get(block=False)
                        except queue.Empty:
                            break
                        message.ack()
                        self._handle(message.payload)
                    self._check_stalled()
            finally:
                # Cancel our consumer before the reply queue goes: RabbitMQ tells a consumer its queue was
                # deleted (basic.cancel), which py-amqp raises as an error when it arrives unasked.
                for step in (queue.clear, queue.close, queue.queue.delete):
                    try:
                        step()
                    except Exception:  # noqa: BLE001 - the scan is over; the queue is only clean-up
                        log.debug("reply queue clean-up: %s failed", step.__name__, exc_info=True)
        self.summary.unrouted = stats.unrouted
        self.summary.unresolved = stats.unresolved
        self.summary.elapsed = time.monotonic() - start
        return self.summary
