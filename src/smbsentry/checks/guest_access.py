"""Guest access: a logon as Guest with an empty password that the server
accepts as guest (SMB1 Action bit 0, SMB2 session flag IS_GUEST), the shares
it can list, which of them it may write to, and whether ADMIN$ or C$ open."""

from __future__ import annotations

from .base import AccessCheck


class GuestAccess(AccessCheck):
    id = "smb-guest-access"
    logon = "guest"
