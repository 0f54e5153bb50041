"""Null session: an anonymous logon that reaches IPC$, and what it can list.

Anonymous IPC$ plus share listing over SRVSVC (NetShareEnumAll) shows what a
worm can reach without credentials (checks.md)."""

from __future__ import annotations

from .base import AccessCheck


class NullSession(AccessCheck):
    id = "smb-null-session"
    logon = "anonymous"
