"""Bytes <-> messages for NetBIOS, SMB1, SMB2/3, NTLMSSP and SPNEGO; no I/O.

The scan engine, the lab and the traffic detector all use these modules, so
the same declared layouts are exercised from both sides of a connection.
Every parser raises ProtocolError, and only ProtocolError, on bad input.
"""

from .errors import ProtocolError

__all__ = ["ProtocolError"]
