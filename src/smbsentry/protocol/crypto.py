"""MD4 and RC4 for NTLM, from pycryptodomex (Cryptodome).

OpenSSL 3 moved MD4 and RC4 to its legacy provider, so hashlib.new("md4")
fails on current Debian and Ubuntu (and on this project's machines).
pycryptodomex carries its own MD4 and ARC4 in C, independent of OpenSSL,
and is already installed as a dependency of impacket; pyproject.toml lists
it because this module imports it directly.  NTLM needs MD4 for the NT hash
and RC4 for the key exchange; both run once per credentialed session.
The functions keep the signatures the earlier pure-Python versions had.
"""

from __future__ import annotations

from Cryptodome.Cipher import ARC4
from Cryptodome.Hash import MD4


def md4(data: bytes) -> bytes:
    """RFC 1320 MD4 digest."""
    return MD4.new(data).digest()


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4 keystream XOR (used once, for the NTLM exported session key)."""
    return ARC4.new(key).encrypt(data)
