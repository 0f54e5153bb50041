"""Users and sessions of the web dashboard, kept in the store's own database.

Three small tables of the web package's own (created on first use, outside the
store's Alembic migrations, all prefixed ``web_``):

- ``web_users``: name, password hash (``scrypt$N$r$p$salt$hash``, hashlib.scrypt
  with a random 16-byte salt, compared with hmac.compare_digest);
- ``web_sessions``: the server-side session table: the SHA-256 of the session id (never the
  id itself: reading the store must not be logging in), user, CSRF token, expiry;
- ``web_secrets``: the random key that signs session cookies (HMAC-SHA256).

A cookie is ``<session id>.<hmac of the id>``; a cookie whose signature does not
match, whose session is unknown or past its expiry is no session at all.  Sessions of the
old layout (the id stored as it is) are not found, so they end at the upgrade.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, delete, insert, select, update
from sqlalchemy.engine import Engine

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
MIN_PASSWORD = 10
ADMIN = "admin"

metadata = MetaData()
users = Table(
    "web_users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), unique=True, nullable=False),
    Column("password", String(300), nullable=False),
    Column("created", Float, nullable=False),
)
sessions = Table(
    "web_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("user", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
)
web_secrets = Table(
    "web_secrets", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", String(128), nullable=False),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_key(sid: str) -> str:
    """What the sessions table keeps of a session id: its SHA-256."""
    return hashlib.sha256(sid.encode()).hexdigest()


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(_unb64(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(digest))


class Auth:
    """Users, sessions and cookie signing on top of a SQLAlchemy engine."""

    def __init__(self, engine: Engine, ttl: float = 8 * 3600) -> None:
        self.engine = engine
        self.ttl = ttl
        metadata.create_all(engine)
        self._key = self._secret("cookie")

    def _secret(self, name: str) -> bytes:
        with self.engine.begin() as conn:
            row = conn.execute(select(web_secrets.c.value).where(web_secrets.c.name == name)).first()
            if row is None:
                value = secrets.token_hex(32)
                try:
                    conn.execute(insert(web_secrets).values(name=name, value=value))
                except Exception:  # noqa: BLE001 - another process made it first
                    pass
        with self.engine.connect() as conn:
            return bytes.fromhex(conn.execute(select(web_secrets.c.value).where(web_secrets.c.name == name)).scalar_one())

    # ------------------------------------------------------------ users
    def has_admin(self) -> bool:
        return self.exists(ADMIN)

    def create_admin(self, password: str) -> bool:
        """Set the first admin password; False when an admin exists already."""
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.id).where(users.c.name == ADMIN)).first() is not None:
                return False
            conn.execute(insert(users).values(name=ADMIN, password=hash_password(password), created=time.time()))
        return True

    def exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.id).where(users.c.name == name)).first() is not None

    def set_password(self, name: str, password: str) -> bool:
        """Set a user's password (creating the user); True when it existed.  Ends every session of the user."""
        digest = hash_password(password)
        with self.engine.begin() as conn:
            existed = conn.execute(select(users.c.id).where(users.c.name == name)).first() is not None
            if existed:
                conn.execute(update(users).where(users.c.name == name).values(password=digest))
            else:
                conn.execute(insert(users).values(name=name, password=digest, created=time.time()))
            conn.execute(delete(sessions).where(sessions.c.user == name))
        return existed

    def check(self, name: str, password: str) -> bool:
        with self.engine.connect() as conn:
            stored = conn.execute(select(users.c.password).where(users.c.name == name)).scalar_one_or_none()
        if stored is None:
            hash_password(password)  # same work whether or not the user exists
            return False
        return verify_password(password, stored)

    # ------------------------------------------------------------ sessions
    def sign(self, sid: str) -> str:
        return sid + "." + _b64(hmac.new(self._key, sid.encode(), hashlib.sha256).digest())

    def unsign(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        sid, _, sig = cookie.rpartition(".")
        want = _b64(hmac.new(self._key, sid.encode(), hashlib.sha256).digest())
        return sid if hmac.compare_digest(sig.encode(), want.encode()) else None

    def new_session(self, user: str) -> tuple[str, str]:
        """(cookie value, csrf token) of a fresh session."""
        sid, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.expires < now))
            conn.execute(insert(sessions).values(id=session_key(sid), user=user, csrf=csrf, created=now,
                                                 expires=now + self.ttl))
        return self.sign(sid), csrf

    def session(self, cookie: str | None) -> dict | None:
        """The live session of a cookie ({id, user, csrf}); slides its expiry forward."""
        sid = self.unsign(cookie)
        if sid is None:
            return None
        now, key = time.time(), session_key(sid)
        with self.engine.begin() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == key)).mappings().first()
            if row is None:
                return None
            if row["expires"] < now:
                conn.execute(delete(sessions).where(sessions.c.id == key))
                return None
            conn.execute(update(sessions).where(sessions.c.id == key).values(expires=now + self.ttl))
        return {"id": row["id"], "user": row["user"], "csrf": row["csrf"]}

    def end_session(self, cookie: str | None) -> None:
        sid = self.unsign(cookie)
        if sid is not None:
            with self.engine.begin() as conn:
                conn.execute(delete(sessions).where(sessions.c.id == session_key(sid)))

    def expire_all(self) -> None:
        """Make every session expired (tests, and a way to log everyone out)."""
        with self.engine.begin() as conn:
            conn.execute(update(sessions).values(expires=0.0))
