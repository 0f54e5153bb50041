"""The central side: shard, route, sign, send, and write every result as it arrives.

At most `window` shards are out at once, so a huge target set is streamed.
Each shard is a Celery task on the queue of the engine that owns its range;
engines send signed messages (start, host, beat, done, refused) to a reply
queue on the same broker, which this side drains.  Host results are written to
the store on arrival, once per address (the store's add_host is idempotent per
scan and address too), so a shard that runs twice leaves no duplicates.

Nothing is sent to a queue before a live engine holding the same key is seen
on it (engines.shared: announced in a Redis broker, asked over Celery's remote
control on others); none within `engine_wait` seconds ends the scan with
NoEngine.  A shard is finished when a `done` arrives for it and every host
result that engine reported has arrived; otherwise the hosts still missing are
signed again with a new nonce and re-sent, as is a shard whose engine went
silent for `stall_timeout` seconds, or that was refused as stale.  A refusal
for any other reason (a bad signature, targets outside the engine's --allow)
ends that shard with an error naming the engine and the reason.

With discovery (`sweep`: --discovery auto | syn | connect), the IPv4 ranges
are not listed: they are cut by route (`Router.split`), and each queue gets
one discovery shard per live engine on it, shard i of n of one seeded
permutation (engines/sweep.py); singles, host names, IPv6 and targets files
go in target shards as before.  A discovery shard is finished when its
`done` arrived with every host result it reported; otherwise it is walked
again whole (the hosts already stored are dropped here, once per address).
What no route covers, and what engines report outside their --allow, is
counted as not covered: the scan is then incomplete (exit 1), never silent.

A broker that goes away is waited for, with backoff, for `broker_wait` seconds;
after it comes back every outstanding shard is re-sent (a restarted broker may
have lost the queued jobs and replies).  Past that window the scan ends with
BrokerUnavailable; `smbsentry scan --resume N --engines` finishes it later.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from celery import Celery
from kombu.exceptions import OperationalError

from . import shared, signing
from .app import TASK_NAME, UNSIGNED_REASONS
from .routes import Router, Shard, Sharding, shards
from .signing import SignatureError

log = logging.getLogger("smbsentry.engines.central")


class ScanAborted(Exception):
    """The scan cannot go on; the message is one line for the user."""


class BrokerUnavailable(ScanAborted):
    pass


class NoEngine(ScanAborted):
    pass


@dataclass(slots=True)
class ShardState:
    shard: Shard
    nonces: set = field(default_factory=set)
    attempts: int = 0      # re-sends for the engine's sake (stalled, stale); not those after a broker outage
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
    errors: list = field(default_factory=list)           # one line per failed shard
    outages: int = 0                                     # broker outages waited out
    timed_out: bool = False
    swept: int = 0                                       # discovery: addresses walked by the engines
    confirmed: int = 0                                   # discovery: SMB hosts the engines confirmed
    not_covered: int = 0                                 # discovery: addresses no route or no --allow covers
    not_covered_ranges: list = field(default_factory=list)  # the first of them, "a-b (why)"
    discovery: dict = field(default_factory=dict)        # engine name -> its last discovery mode line

    @property
    def complete(self) -> bool:
        return (not self.timed_out and self.shards_failed == 0 and self.shards_done == self.shards
                and not self.unrouted and not self.unresolved and not self.not_covered)

    @property
    def hosts_per_second(self) -> float:
        return self.targets / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict:
        n = len(self.queue_overhead)
        return {
            "shards": self.shards, "shards_done": self.shards_done, "shards_failed": self.shards_failed,
            "resent": self.resent, "targets": self.targets, "with_smb": self.with_smb, "services_only": self.services_only,
            "duplicates": self.duplicates, "refused": self.refused, "bad_messages": self.bad_messages,
            "unrouted": len(self.unrouted), "unresolved": len(self.unresolved), "elapsed": round(self.elapsed, 3),
            "engines": self.engines, "errors": self.errors, "outages": self.outages, "swept": self.swept,
            "confirmed": self.confirmed, "not_covered": self.not_covered, "not_covered_ranges": self.not_covered_ranges,
            "discovery": self.discovery,
            "queue_overhead_mean": round(sum(self.queue_overhead) / n, 4) if n else None,
            "complete": self.complete,
        }


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def permanent(exc: BaseException) -> bool:
    """A broker error that waiting will not cure: refused credentials, an untrusted certificate."""
    for e in _chain(exc):
        name, text = type(e).__name__.lower(), str(e).lower()
        if "auth" in name or "accessrefused" in name or isinstance(e, ssl.SSLError):
            return True
        if any(w in text for w in ("wrongpass", "noauth", "invalid username-password", "access_refused",
                                   "certificate verify failed")):
            return True
    return False


class DistributedScan:
    def __init__(self, app: Celery, key: bytes, router: Router, options: dict, *, store=None, scan_id: int = 0,
                 shard_size: int = 256, window: int = 64, stall_timeout: float = 120.0, max_attempts: int = 3,
                 timeout: float | None = None, on_host: Callable[[dict], None] | None = None,
                 on_message: Callable[[dict], None] | None = None, broker_wait: float = 60.0,
                 engine_wait: float = 5.0, check_engines: bool = True, skip: set[str] | None = None,
                 on_notice: Callable[[str], None] | None = None, sweep: dict | None = None) -> None:
        self.app = app
        self.key = key
        self.key_id = signing.key_id(key)
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
        self.broker_wait = broker_wait
        self.engine_wait = engine_wait
        self.check_engines = check_engines
        self.skip = skip
        self.on_notice = on_notice
        self.sweep = dict(sweep) if sweep else None  # {"mode", "retries"}: discovery on the engines
        self.seed = secrets.randbits(62)  # the permutation every engine of this scan walks
        self._ids = itertools.count()
        self.reply = f"smbsentry.results.{scan_id}.{secrets.token_hex(6)}"
        self.summary = DistributedSummary()
        self.seen: set[str] = set()
        self.received: dict[str, int] = {}      # nonce -> host messages that arrived for it
        self.out: dict[int, ShardState] = {}
        self.redis = shared.is_redis(str(app.conf.broker_url))
        self._served: set[str] = set()          # queues a live engine with our key was seen on
        self._orphaned: dict[str, float] = {}   # queue -> since when no live engine serves it
        # announced engines (Redis) are one read away; asking over remote control (other brokers) takes a second
        self._liveness_every = 5.0 if self.redis else 30.0
        self._next_liveness = time.monotonic() + self._liveness_every
        self._stopping = False
        self._producer = None

    def stop(self) -> None:
        self._stopping = True

    def _notice(self, text: str) -> None:
        """What the user should know while the scan goes on (a broker outage and its end)."""
        log.info("%s", text)
        if self.on_notice:
            self.on_notice(text)

    # ------------------------------------------------------------ engines
    def engines(self, conn) -> dict[str, dict]:
        """Live engines and what they said about themselves (queues, key id, allowed ranges)."""
        if self.redis:
            return shared.announced(conn)
        got = self.app.control.inspect(timeout=1.0, connection=conn)._request("smbsentry_info") or {}
        return {name: {"name": name, **info} for name, info in got.items() if isinstance(info, dict)}

    def _problem(self, queue: str, info: dict) -> str | None:
        name = info.get("name", "?")
        if info.get("key_ok") is False:
            return f"engine {name} on queue {queue} has no usable key ({info.get('key_error')}): it refuses every shard"
        theirs = info.get("key_id")
        if theirs and theirs != self.key_id:
            return (f"engine {name} on queue {queue} holds another key (key id {theirs}; --key-file's is {self.key_id}): "
                    "it would refuse every shard")
        if "allowed" in info and not info.get("allowed"):
            return f"engine {name} on queue {queue} allows no ranges (--allow): it refuses every shard"
        return None

    def require_engine(self, conn, queue: str) -> None:
        """Return once a live engine holding our key serves `queue`; NoEngine after engine_wait seconds."""
        if not self.check_engines or queue in self._served:
            return
        deadline = time.monotonic() + self.engine_wait
        while True:
            live = [i for i in self.engines(conn).values() if queue in (i.get("queues") or [])]
            for info in live:
                problem = self._problem(queue, info)
                if problem:
                    raise NoEngine(problem)
            if live:
                self._served.add(queue)
                return
            if time.monotonic() >= deadline or self._stopping:
                raise NoEngine(f"no live engine serves queue {queue} (waited {self.engine_wait:.0f}s): start one on "
                               f"the same broker with: smbsentry engine --queue {queue} --allow CIDR --key-file KEY")
            time.sleep(0.5)

    def _check_liveness(self, conn) -> None:
        """Shards on a queue that no live engine has served for stall_timeout seconds fail, rather than wait for ever."""
        now = time.monotonic()
        if not self.check_engines or not self.stall_timeout or now < self._next_liveness or not self.out:
            return
        self._next_liveness = now + self._liveness_every
        waiting = {st.shard.queue for st in self.out.values()}
        live = {q for i in self.engines(conn).values() for q in (i.get("queues") or [])}
        for queue in waiting:
            if queue in live:
                self._orphaned.pop(queue, None)
                continue
            since = self._orphaned.setdefault(queue, now)
            if now - since >= self.stall_timeout:
                for st in [s for s in self.out.values() if s.shard.queue == queue]:
                    self._fail(st, f"no live engine on queue {queue} for {now - since:.0f}s")

    # ------------------------------------------------------------ sending
    def _send(self, st: ShardState, targets: list[str] | None = None) -> None:
        job = signing.new_job(self.scan_id, st.shard.id, targets if targets is not None else st.shard.targets,
                              self.options, self.reply, sweep=st.shard.sweep)
        sig = signing.sign(self.key, job)
        st.nonces.add(job["nonce"])
        st.sent_at = time.monotonic()
        st.started_at = st.last_seen = None
        self.app.send_task(TASK_NAME, args=[job, sig], queue=st.shard.queue, producer=self._producer, retry=False)

    def _unseen(self, st: ShardState) -> list[str]:
        return [t for t in st.shard.targets if t not in self.seen]

    def _done(self, st: ShardState, now: float, said: dict | None = None) -> None:
        self.summary.shards_done += 1
        self.summary.targets += len(st.shard.targets)
        if st.shard.sweep is not None:
            self._swept(st, said or {})
        self.summary.shard_seconds.append(now - st.sent_at)
        self.out.pop(st.shard.id, None)

    def _swept(self, st: ShardState, said: dict) -> None:
        """What a discovery shard's `done` says: addresses walked, hosts confirmed, the mode line, and the
        addresses of its shard outside the engine's --allow (not covered)."""
        disc = said.get("discovery") if isinstance(said.get("discovery"), dict) else {}
        engine = str((st.engine or {}).get("name") or "?")
        walked = _count(disc.get("addresses"))
        self.summary.swept += walked
        self.summary.targets += walked
        self.summary.confirmed += _count(disc.get("confirmed"))
        self.summary.discovery[engine] = " ".join(str(disc.get("mode_line") or "discovery: ?").split())[:300]
        missed = _count(said.get("not_covered"))
        if missed:
            self.summary.not_covered += missed
            for text in (said.get("not_covered_ranges") or [])[:5]:
                self._not_covered_range(f"{str(text)[:40]} (outside the --allow of engine {engine[:100]})")

    def _not_covered_range(self, text: str) -> None:
        if len(self.summary.not_covered_ranges) < 5 and text not in self.summary.not_covered_ranges:
            self.summary.not_covered_ranges.append(text)

    def _fail(self, st: ShardState, why: str) -> None:
        why = " ".join(why.split())   # an engine's text (an exception's) on one line
        if st.shard.sweep is not None:
            what = f"discovery shard {st.shard.sweep['index']} of {st.shard.sweep['count']}"
        else:
            what = f"{len(st.shard.targets)} targets, first {st.shard.targets[0]}"
        line = f"shard {st.shard.id} (queue {st.shard.queue}, {what}): {why}"
        log.info("%s", line)   # the caller reports summary.errors
        self.summary.errors.append(line)
        self.summary.shards_failed += 1
        self.out.pop(st.shard.id, None)

    def _resend(self, st: ShardState, why: str) -> None:
        st.attempts += 1
        if st.attempts >= self.max_attempts:
            self._fail(st, f"given up after {st.attempts} attempts ({why})")
            return
        log.info("shard %s (%s): sending again (%s)", st.shard.id, st.shard.queue, why)
        self.summary.resent += 1
        self._send(st, self._unseen(st))

    def _resend_all(self) -> None:
        """After a broker outage: the queued jobs and replies may be gone; send again what is still missing."""
        now = time.monotonic()
        for st in list(self.out.values()):
            missing = self._unseen(st)
            if st.shard.sweep is not None:   # a discovery shard is walked again whole
                self.summary.resent += 1
                self._send(st, [])
                continue
            if not missing:
                self._done(st, now)   # every result arrived, only its `done` was lost
                continue
            self.summary.resent += 1
            self._send(st, missing or st.shard.targets)

    # ------------------------------------------------------------ receiving
    def _authentic(self, body: object) -> tuple[dict | None, bool]:
        """(message, signed) of a reply, or (None, False) for one to drop."""
        if not isinstance(body, dict) or not isinstance(body.get("msg"), dict):
            return None, False
        msg = body["msg"]
        if not body.get("sig") and msg.get("type") == "refused" and msg.get("reason") in UNSIGNED_REASONS:
            return msg, False     # an engine that could not check our signature says so, unsigned
        try:
            signing.verify(self.key, msg, body.get("sig"))
        except SignatureError as exc:
            log.warning("dropped a reply: %s", exc)
            return None, False
        return msg, True

    def _handle(self, body: object) -> None:
        msg, signed = self._authentic(body)
        if msg is None or msg.get("scan_id") != self.scan_id:
            self.summary.bad_messages += 1
            return
        st = self.out.get(msg.get("shard"))
        if st is not None and msg.get("nonce") not in st.nonces:
            st = None  # a message for an attempt we never sent
        if not signed:
            # only good for ending an attempt we sent: never a result
            if st is None:
                self.summary.bad_messages += 1
            else:
                self._refused(st, msg)
            return
        if self.on_message:
            self.on_message(msg)
        kind = msg.get("type")
        now = time.monotonic()
        if kind == "host":
            self._host(msg, st, now)
        elif st is None:
            return  # late news of a finished shard, or of an attempt we replaced
        elif kind in ("start", "beat"):
            if kind == "start":
                st.started_at = now
                st.engine = msg.get("engine")
                self.summary.queue_overhead.append(now - st.sent_at)
            st.last_seen = now
        elif kind == "done":
            said = msg.get("summary") if isinstance(msg.get("summary"), dict) else {}
            reported = said.get("reported")
            lost = isinstance(reported, int) and self.received.get(msg.get("nonce"), 0) < reported
            if lost and (self._unseen(st) or st.shard.sweep is not None):
                self._resend(st, f"{reported - self.received.get(msg.get('nonce'), 0)} host results lost on the way")
            else:
                self._done(st, now, said)
        elif kind == "refused":
            self._refused(st, msg)
        elif kind == "error":   # the engine gave up on it (its retries spent): another attempt, then an error
            self._resend(st, f"engine {(msg.get('engine') or {}).get('name')} failed: {str(msg.get('detail'))[:300]}")

    def _host(self, msg: dict, st: ShardState | None, now: float) -> None:
        host = msg.get("host")
        if not isinstance(host, dict) or "address" not in host:
            self.summary.bad_messages += 1
            return
        nonce = str(msg.get("nonce"))
        self.received[nonce] = self.received.get(nonce, 0) + 1
        if st is not None:
            st.last_seen = now
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

    def _refused(self, st: ShardState, msg: dict) -> None:
        reason = str(msg.get("reason"))
        self.summary.refused[reason] = self.summary.refused.get(reason, 0) + 1
        engine = (msg.get("engine") or {}).get("name") or "?"
        if reason == "replay":
            return  # that engine is already running (or ran) this very job
        if reason == "stale":
            self._resend(st, "stale")
            return
        self._fail(st, f"refused by engine {engine}: {reason}: {str(msg.get('detail'))[:300]}")

    def _check_stalled(self) -> None:
        if not self.stall_timeout:
            return
        now = time.monotonic()
        for st in list(self.out.values()):
            if st.last_seen is not None and now - st.last_seen > self.stall_timeout:
                self._resend(st, f"engine {(st.engine or {}).get('name')} silent for {now - st.last_seen:.0f}s")

    # ------------------------------------------------------------ the loop
    def _fill(self, conn, gen) -> bool:
        """Send shards until the window is full; False once the targets are exhausted."""
        while len(self.out) < self.window:
            shard = next(gen, None)
            if shard is None:
                return False
            self.require_engine(conn, shard.queue)
            for part in self._parts(conn, shard):
                part.id = next(self._ids)
                st = ShardState(part)
                self.out[part.id] = st
                self.summary.shards += 1
                self._send(st)
        return True

    def _parts(self, conn, shard: Shard) -> list[Shard]:
        """A target shard as it is; a queue's share of the swept ranges as one discovery shard per live
        engine on the queue (shard i of n of the permutation): n engines sweep at once."""
        if shard.sweep is None:
            return [shard]
        n = 1
        if self.check_engines:
            live = [i for i in self.engines(conn).values()
                    if shard.queue in (i.get("queues") or []) and self._problem(shard.queue, i) is None]
            n = max(1, min(len(live), 4096))
        return [Shard(0, shard.queue, [], {**shard.sweep, "index": i, "count": n}) for i in range(n)]

    def _sweeps(self, targets) -> Iterator[Shard]:
        """One placeholder per queue for its share of the IPv4 ranges (expanded by `_parts`); the
        ranges no route covers are counted as not covered at once."""
        from ..discover.permute import AddressSpace

        blocks, excludes = targets.ipv4_ranges()
        space = AddressSpace(blocks, excludes)
        if not space.count:
            return
        pieces = self.router.split(zip(space.starts, space.ends))
        for lo, hi in pieces.pop(None, []):
            self.summary.not_covered += hi - lo + 1
            self._not_covered_range(f"{_ntoa(lo)}-{_ntoa(hi)} (no route)")
        base = {"blocks": [list(b) for b in zip(space.starts, space.ends)], "excludes": [],
                "seed": self.seed, "mode": self.sweep["mode"], "retries": int(self.sweep.get("retries") or 0)}
        for queue, share in pieces.items():
            yield Shard(0, queue, [], {**base, "only": [list(p) for p in share]})

    def _shards(self, targets, stats: Sharding) -> Iterator[Shard]:
        if self.sweep is None or not hasattr(targets, "ipv4_ranges"):
            return shards(targets, self.router, self.shard_size, stats, skip=self.skip)
        if self.skip:
            self.seen.update(self.skip)   # --resume: hosts stored already are dropped when an engine finds them again
        rest = shards(targets.without_ipv4_ranges(), self.router, self.shard_size, stats, skip=self.skip)
        return itertools.chain(self._sweeps(targets), rest)

    def _drain(self, queue) -> None:
        try:
            message = queue.get(block=True, timeout=0.5)
        except queue.Empty:
            return
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

    def _connected(self, conn, gen, start: float, state: dict) -> None:
        """One broker connection's share of the scan: returns when the scan is over, raises on a broker error."""
        queue = conn.SimpleQueue(self.reply)
        self._producer = self.app.amqp.Producer(conn.channel())
        try:
            if state["outage"] is not None:
                self._notice(f"broker back after {time.monotonic() - state['outage']:.0f}s: "
                             f"sending the {len(self.out)} outstanding shards again")
                state["outage"] = None
                self._resend_all()
            while not self._stopping:
                if not state["exhausted"]:
                    state["exhausted"] = not self._fill(conn, gen)
                if state["exhausted"] and not self.out:
                    return
                if self.timeout is not None and time.monotonic() - start > self.timeout:
                    self.summary.timed_out = True
                    return
                self._drain(queue)
                self._check_stalled()
                self._check_liveness(conn)
        finally:
            self._producer = None
            # Cancel our consumer before the reply queue goes: RabbitMQ tells a consumer its queue was
            # deleted (basic.cancel), which py-amqp raises as an error when it arrives unasked.
            last = state["exhausted"] and not self.out or self._stopping or self.summary.timed_out
            for step in ((queue.clear, queue.close, queue.queue.delete) if last else (queue.close,)):
                try:
                    step()
                except Exception:  # noqa: BLE001 - the scan is over (or the broker is gone); clean-up only
                    log.debug("reply queue clean-up: %s failed", step.__name__, exc_info=True)

    def _broker_errors(self, conn) -> tuple[type[BaseException], ...]:
        return tuple(e for e in (*conn.connection_errors, *conn.channel_errors) if e is not KeyError) + (OperationalError,)

    def _wait_for_broker(self, exc: BaseException, state: dict) -> None:
        """Back off before the next connection attempt; BrokerUnavailable once broker_wait is spent."""
        now = time.monotonic()
        if state["outage"] is None:
            state["outage"] = now
            state["delay"] = 0.25
            self.summary.outages += 1
            self._notice(f"broker unreachable ({str(exc).strip() or type(exc).__name__}): "
                         f"retrying for up to {self.broker_wait:g}s")
        waited = now - state["outage"]
        if waited >= self.broker_wait or self._stopping:
            raise BrokerUnavailable(f"the broker was unreachable for {waited:.0f}s (--broker-wait {self.broker_wait:g}): "
                                    f"{str(exc).strip() or type(exc).__name__}") from None
        time.sleep(min(state["delay"], self.broker_wait - waited))
        state["delay"] = min(state["delay"] * 2, 5.0)

    def run(self, targets: Iterable) -> DistributedSummary:
        start = time.monotonic()
        stats = Sharding()
        gen = self._shards(targets, stats)
        state = {"exhausted": False, "outage": None, "delay": 0.25}
        try:
            while True:
                conn = self.app.connection_for_write()
                errors = self._broker_errors(conn)
                try:
                    conn.ensure_connection(max_retries=0)   # one try: the backoff is ours
                    self._connected(conn, gen, start, state)
                    return self.summary
                except ScanAborted:
                    raise
                except errors as exc:
                    if permanent(exc):
                        raise
                    self._wait_for_broker(exc, state)
                finally:
                    try:
                        conn.release()
                    except Exception:  # noqa: BLE001 - a dead connection
                        pass
        finally:
            self.summary.unrouted = stats.unrouted
            self.summary.unresolved = stats.unresolved
            self.summary.elapsed = time.monotonic() - start


def _ntoa(n: int) -> str:
    return socket.inet_ntoa(n.to_bytes(4, "big"))


def _count(value: object) -> int:
    """A count from an engine's reply: a non-negative int, else 0 (a reply is signed, still never trusted to crash us)."""
    return value if type(value) is int and value >= 0 else 0
