"""What the engines on one broker share through it: the job nonces already run, and who is alive.

Replay protection has to hold across engine processes: a nonce remembered only
inside one engine lets the same signed job run again after that engine restarts,
or on a second engine of the same queue.  With a Redis broker every engine
therefore claims a job's nonce in the broker itself, atomically (a Lua script):

    smbsentry:nonce:<nonce>        "running" or "done", kept for the maximum job age
    smbsentry:nonce:<nonce>:lease  the claiming engine process, kept alive by its heartbeat

A nonce that is "done" is a replay.  A nonce "running" under a live lease is
busy (another engine is on it: the task is retried later).  A nonce "running"
whose lease lapsed belonged to an engine that died mid-shard, so the job (the
broker's redelivery of it) may be taken over: a shard completes at most once,
and a dead engine's shard is not lost.  An engine whose scan fails releases
its claim, so Celery's retry of the same message is accepted.

With a broker other than Redis (amqp://) there is no shared key-value store:
the engine keeps the nonces in its own memory and says so when it starts.

Engines on a Redis broker also announce themselves (`smbsentry:engine:<name>`,
refreshed with every heartbeat, gone a few seconds after the engine is; the
names in the sorted set `smbsentry:engines`), so the
central side can see at once which queues have a live engine holding the same
key before it sends anything; on other brokers it asks them over Celery's
remote control instead (see central.py).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict

NONCE_PREFIX = "smbsentry:nonce:"
ENGINE_PREFIX = "smbsentry:engine:"
ENGINES = "smbsentry:engines"   # a sorted set of the names announced (score: when last announced)
LEASE_SECONDS = 10.0      # an engine that stops heartbeating loses its claim this long after
PRESENCE_SECONDS = 10.0   # an engine that stops heartbeating is listed this long after

NEW, TAKEOVER, BUSY, DONE = "new", "takeover", "busy", "done"

_CLAIM = """
local st = redis.call('GET', KEYS[1])
if not st then
  redis.call('SET', KEYS[1], 'running', 'PX', ARGV[1])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  return 'new'
end
if st == 'done' then return 'done' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'busy' end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return 'takeover'
"""
# only the engine holding the lease may renew or release it
_IF_OWNER = """
if redis.call('GET', KEYS[2]) == ARGV[{owner}] then
  {action}
  return 1
end
return 0
"""
_RENEW = _IF_OWNER.format(owner=2, action="redis.call('PEXPIRE', KEYS[2], ARGV[1])")
_FINISH = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = tonumber(ARGV[1]) end
redis.call('SET', KEYS[1], 'done', 'PX', ttl)
redis.call('DEL', KEYS[2])
return 1
"""
_RELEASE = _IF_OWNER.format(owner=1, action="redis.call('DEL', KEYS[1], KEYS[2])")


class SharedStateError(ConnectionError):
    """The broker could not be asked (down, or refused): the job is retried, never run unchecked."""


def owner_token(name: str) -> str:
    """This engine process: a restarted engine with the same name is another owner."""
    return f"{name}/{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def is_redis(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("redis", "rediss")


class LocalNonces:
    """Nonces seen by this process only (brokers without a key-value store); same interface as RedisNonces."""

    shared = False

    def __init__(self, ttl: float, limit: int = 100_000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._seen: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, nonce: str, owner: str) -> str:
        now = time.time()
        with self._lock:
            while self._seen:
                _oldest, (at, _state) = next(iter(self._seen.items()))
                if at > now - self.ttl and len(self._seen) < self.limit:
                    break
                self._seen.popitem(last=False)
            got = self._seen.get(nonce)
            if got is not None:
                return DONE if got[1] == DONE else BUSY
            self._seen[nonce] = (now, owner)
            return NEW

    def renew(self, nonce: str, owner: str) -> bool:
        with self._lock:
            got = self._seen.get(nonce)
            return got is not None and got[1] == owner

    def finish(self, nonce: str, owner: str) -> None:
        with self._lock:
            got = self._seen.get(nonce)
            if got is not None:
                self._seen[nonce] = (got[0], DONE)

    def release(self, nonce: str, owner: str) -> None:
        with self._lock:
            got = self._seen.get(nonce)
            if got is not None and got[1] == owner:
                del self._seen[nonce]


class RedisNonces:
    """Nonces claimed in the Redis broker, shared by every engine on it (see the module's docstring)."""

    shared = True

    def __init__(self, celery_app, ttl: float, lease: float = LEASE_SECONDS) -> None:
        self.app = celery_app
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.lease_ms = max(1000, int(lease * 1000))
        self._conn = None
        self._lock = threading.Lock()

    def _eval(self, script: str, nonce: str, *args) -> object:
        keys = [NONCE_PREFIX + nonce, NONCE_PREFIX + nonce + ":lease"]
        try:
            with self._lock:
                if self._conn is None:
                    self._conn = self.app.connection_for_write()
                with self._conn.default_channel.conn_or_acquire() as client:
                    return client.eval(script, 2, *keys, *args)
        except Exception as exc:  # noqa: BLE001 - redis-py's errors are not OSErrors
            with self._lock:
                if self._conn is not None:
                    self._conn.release()
                    self._conn = None
            raise SharedStateError(f"cannot reach the broker's nonce store: {exc}") from None

    @staticmethod
    def _text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def claim(self, nonce: str, owner: str) -> str:
        return self._text(self._eval(_CLAIM, nonce, self.ttl_ms, self.lease_ms, owner))

    def renew(self, nonce: str, owner: str) -> bool:
        return bool(self._eval(_RENEW, nonce, self.lease_ms, owner))

    def finish(self, nonce: str, owner: str) -> None:
        self._eval(_FINISH, nonce, self.ttl_ms)

    def release(self, nonce: str, owner: str) -> None:
        self._eval(_RELEASE, nonce, owner)


def nonce_store(celery_app, ttl: float):
    """RedisNonces on a Redis broker, LocalNonces (this process only) on any other."""
    if is_redis(str(celery_app.conf.broker_url)):
        return RedisNonces(celery_app, ttl)
    return LocalNonces(ttl)


# ---------------------------------------------------------------- presence
class Presence:
    """Announce this engine in a Redis broker every few seconds (and withdraw it on a clean stop)."""

    def __init__(self, celery_app, name: str, info, interval: float = 2.0) -> None:
        self.app = celery_app
        self.key = ENGINE_PREFIX + name
        self.info = info            # called each time: the engine's queues and key id may change
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not is_redis(str(self.app.conf.broker_url)):
            return
        self._thread = threading.Thread(target=self._loop, name="smbsentry-engine-presence", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        conn = None
        while True:
            try:
                if conn is None:
                    conn = self.app.connection_for_write()
                with conn.default_channel.conn_or_acquire() as client:
                    if self._stop.is_set():
                        client.delete(self.key)
                        break
                    info = self.info()
                    client.set(self.key, json.dumps(info, default=str), px=int(PRESENCE_SECONDS * 1000))
                    client.zadd(ENGINES, {info["name"]: time.time()})
            except Exception:  # noqa: BLE001 - the broker is down: try again at the next beat
                if conn is not None:
                    conn.release()
                    conn = None
                if self._stop.is_set():
                    break
            self._stop.wait(self.interval)
        if conn is not None:
            conn.release()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def announced(conn) -> dict[str, dict]:
    """Engines announced in a Redis broker: name -> what the engine said (queues, key_id, allowed, ...)."""
    out: dict[str, dict] = {}
    with conn.default_channel.conn_or_acquire() as client:
        client.zremrangebyscore(ENGINES, "-inf", time.time() - 86400)   # names not heard of for a day
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in client.zrange(ENGINES, 0, -1)]
        if not names:
            return out
        for raw in client.mget([ENGINE_PREFIX + n for n in names]):
            if raw is None:
                continue
            try:
                info = json.loads(raw)
            except ValueError:
                continue
            if isinstance(info, dict) and isinstance(info.get("name"), str):
                out[info["name"]] = info
    return out
