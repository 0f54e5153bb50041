"""HMAC-SHA256 signatures for scan jobs and for the results engines send back.

Celery's own message signing (`task_serializer="auth"`) needs an X.509
certificate and key on every node.  This is the shared-key equivalent: the
central side and every engine hold the same key file, the central side signs
the canonical JSON of each job (targets, options, scan id, issued-at, nonce)
and an engine checks the signature, the age and (through the nonce store all
engines share, shared.py) the nonce before it scans anything.  Engines sign their replies with the same key so a party that can
only write to the broker cannot inject results either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

MIN_KEY_BYTES = 16
DEFAULT_MAX_AGE = 600.0  # seconds a job stays valid after it was issued
CLOCK_SKEW = 120.0       # a job may be issued this far in the engine's future


class SignatureError(Exception):
    """A job or reply that must not be acted upon; `reason` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def canonical(obj: object) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def sign(key: bytes, obj: object) -> str:
    return hmac.new(key, canonical(obj), hashlib.sha256).hexdigest()


def verify(key: bytes, obj: object, signature: object) -> None:
    if not isinstance(signature, str) or not signature:
        raise SignatureError("unsigned", "no signature")
    if not hmac.compare_digest(sign(key, obj), signature):
        raise SignatureError("bad-signature", "signature does not match the job")


def load_key(path: str | os.PathLike[str] | None) -> bytes:
    """The shared key: the file's bytes, surrounding whitespace removed."""
    if path is None:
        path = os.environ.get("SMBSENTRY_ENGINE_KEY_FILE")
    if not path:
        raise SignatureError("no-key", "no key file (--key-file or SMBSENTRY_ENGINE_KEY_FILE)")
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SignatureError("no-key", f"cannot read key file {path}: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise SignatureError("no-key", f"key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES} needed")
    return key


def key_id(key: bytes) -> str:
    """A short public name of a key (an HMAC of a constant): two sides can compare keys without showing them."""
    return hmac.new(key, b"smbsentry engine key id", hashlib.sha256).hexdigest()[:16]


def generate_key(path: str | os.PathLike[str]) -> None:
    """Write a new random key (64 hex characters), readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")


def new_job(scan_id: int, shard: int, targets: list[str], options: dict, reply: str, *, now: float | None = None,
            sweep: dict | None = None) -> dict:
    """A job: `targets` to fingerprint, or (with `sweep`, engines/sweep.py) a discovery shard to walk."""
    job = {
        "v": 1, "scan_id": scan_id, "shard": shard, "targets": list(targets), "options": options,
        "reply": reply, "issued_at": time.time() if now is None else now, "nonce": secrets.token_hex(16),
    }
    if sweep is not None:
        job["sweep"] = sweep
    return job


def check_job(key: bytes, job: object, signature: object, max_age: float = DEFAULT_MAX_AGE,
              now: float | None = None) -> dict:
    """Signature, shape and age of a job; returns it or raises SignatureError.

    Whether its nonce was already run is asked of the nonce store the engines share (shared.py)."""
    if not isinstance(job, dict):
        raise SignatureError("malformed", "job is not an object")
    verify(key, job, signature)
    for name, kind in (("scan_id", int), ("shard", int), ("targets", list), ("options", dict),
                       ("reply", str), ("issued_at", (int, float)), ("nonce", str)):
        if not isinstance(job.get(name), kind):
            raise SignatureError("malformed", f"job field {name!r} missing or of the wrong type")
    if "sweep" in job and not isinstance(job["sweep"], dict):
        raise SignatureError("malformed", "job field 'sweep' is not an object")
    now = time.time() if now is None else now
    age = now - float(job["issued_at"])
    if age > max_age:
        raise SignatureError("stale", f"issued {age:.0f}s ago (limit {max_age:.0f}s)")
    if age < -CLOCK_SKEW:
        raise SignatureError("stale", f"issued {-age:.0f}s in the future")
    return job
