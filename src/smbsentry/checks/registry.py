"""The checks, in run order, and `--checks default|all|ID,...` selection.

CHECKS is the one list: a new check is its module, one line here and its KB
entry (kb/data/vulnerabilities.json).  The order is the run order: cheap facts
first, then the session-based probes, then the Shadow Brokers modules (not
default).  Nothing registers itself on import.
"""

from __future__ import annotations

from .base import Check
from .baseline import SmbBaseline
from .doublepulsar import DoublePulsar
from .eol_os import EolOs
from .guest_access import GuestAccess
from .ms08_067 import Ms08067
from .ms09_050 import Ms09050
from .ms10_061 import Ms10061
from .ms17_010 import Ms17010
from .null_session import NullSession
from .reflected_relay import ReflectedRelay
from .relay import NtlmRelay
from .sambacry import SambaCry
from .shadowbrokers import (
    Easybee,
    Easypi,
    Eclipsedwing,
    Educatedscholar,
    Emeraldthread,
    Emphasismine,
    Englishmansdentist,
    Erraticgopher,
    Eskimoroll,
    Esteemaudit,
    Ewokfrenzy,
    Explodingcan,
    Zippybeer,
)
from .signing import SigningNotRequired
from .smb_client_rce import SmbClientRce2022
from .smb_quic import SmbOverQuic
from .smbghost import SmbGhost
from .smbleed import SmbLeed
from .smbv1 import Smbv1Enabled

CHECKS: tuple[type[Check], ...] = (
    Smbv1Enabled,
    SigningNotRequired,
    SmbGhost,
    SmbLeed,
    ReflectedRelay,
    SmbClientRce2022,
    Ms17010,
    DoublePulsar,
    NullSession,
    GuestAccess,
    Ms08067,
    Ms09050,
    Ms10061,
    SambaCry,
    EolOs,
    NtlmRelay,
    SmbBaseline,
    SmbOverQuic,
    # the Shadow Brokers table (checks/shadowbrokers.py; not default)
    Eclipsedwing,
    Educatedscholar,
    Emeraldthread,
    Erraticgopher,
    Zippybeer,
    Esteemaudit,
    Explodingcan,
    Eskimoroll,
    Englishmansdentist,
    Emphasismine,
    Ewokfrenzy,
    Easypi,
    Easybee,
)

_BY_ID: dict[str, type[Check]] = {c.id: c for c in CHECKS}
if len(_BY_ID) != len(CHECKS):
    raise ValueError("a check id appears twice in CHECKS")


def all_ids() -> list[str]:
    return [c.id for c in CHECKS]


def select(spec: str = "default") -> list[Check]:
    """Checks for a --checks value; ValueError naming an unknown id."""
    ids = all_ids()
    spec = spec.strip()
    if spec in ("", "none"):
        return []
    if spec == "all":
        chosen = ids
    elif spec == "default":
        chosen = [i for i in ids if _BY_ID[i].default]
    else:
        chosen = []
        for part in spec.split(","):
            part = part.strip().lower()
            if part == "default":
                chosen += [i for i in ids if _BY_ID[i].default]
            elif part not in _BY_ID:
                raise ValueError(f"unknown check {part!r} (known: {', '.join(ids)})")
            else:
                chosen.append(part)
        chosen = list(dict.fromkeys(chosen))
    return [_BY_ID[i]() for i in chosen]
