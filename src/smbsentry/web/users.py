"""`smbsentry users passwd`: set a dashboard user's password from the command line.

The admin password can be changed (or set for the first time, with no setup token: whoever
runs this can write the store anyway) without the dashboard running.  Every session of
the user ends, so a password changed because it leaked also logs the other party out.
"""

from __future__ import annotations

import getpass
import sys

from .auth import ADMIN, MIN_PASSWORD


def _err(text: str) -> None:
    print(f"smbsentry: {text}", file=sys.stderr)


def read_password(from_stdin: bool) -> str | None:
    """The new password: the first line of stdin, or asked twice on the terminal; None after saying why not."""
    if from_stdin:
        line = sys.stdin.readline(4096)
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        _err("no terminal to ask the password on: pipe it in with --password-stdin")
        return None
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Again: "):
        _err("the two passwords differ")
        return None
    return first


def main_passwd(user: str, db: str | None, from_stdin: bool) -> int:
    """0 done, 1 the store failed, 2 bad input (unknown user, short password)."""
    from ..store import Store, StoreError
    from .auth import Auth

    try:
        store = Store.open(db)
    except StoreError as exc:
        _err(str(exc))
        return 1
    try:
        auth = Auth(store.engine)
        if user != ADMIN and not auth.exists(user):
            _err(f"no dashboard user {user!r} (the dashboard has one user: {ADMIN})")
            return 2
        password = read_password(from_stdin)
        if password is None:
            return 2
        if len(password) < MIN_PASSWORD:
            _err(f"the password needs at least {MIN_PASSWORD} characters")
            return 2
        existed = auth.set_password(user, password)
    except Exception as exc:  # noqa: BLE001 - a database error, said in one line
        _err(f"cannot set the password: {exc}")
        return 1
    finally:
        store.close()
    print(f"password of {user} {'changed; its sessions ended' if existed else 'set (user created)'}", file=sys.stderr)
    return 0
