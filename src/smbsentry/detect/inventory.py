"""The SMBv1 inventory: who still speaks SMBv1 to whom.

Per flow the engine records what the SMB1 session setup shows
(:func:`negotiate_request`, :func:`negotiate_or_setup_reply`,
:func:`setup_request`: the dialects offered, the one chosen, both sides'
NativeOS and NativeLanMan).  When a flow ends, :meth:`Smb1Inventory.note`
folds it into one entry per (client, server, port) if the server answered
in SMB1 or the client offered only SMB1 dialects.  Entries from shards
merge the same way (:meth:`Smb1Inventory.merge`): the earliest flow's value
of each text field wins, whatever the order.  At the end every entry
becomes an ``smb1-usage`` event (:meth:`Smb1Inventory.usage_events`) and the
summary lists the speakers.
"""

from __future__ import annotations

import math
from typing import Any

from ..protocol.smb1 import NEGOTIATE
from .events import Events, iso_time
from .flows import Flow
from .packet import format_addr
from .smbmsg import session_setup_strings, smb1_dialects

__all__ = ["Smb1Inventory", "negotiate_or_setup_reply", "negotiate_request", "setup_request"]

#: The text fields of an entry, each kept from the earliest flow that had it.
_PAIR_TEXT = ("dialect", "client_native_os", "client_native_lm", "server_native_os", "server_native_lm")


def negotiate_request(flow: Flow, m: bytes) -> None:
    """An SMB1 NEGOTIATE request: the dialects the client offers."""
    flow.smb1_dialects = smb1_dialects(m)


def setup_request(flow: Flow, m: bytes) -> None:
    """An SMB1 SESSION_SETUP_ANDX request: the client's NativeOS and NativeLanMan (the first seen)."""
    if flow.client_os is None:
        flow.client_os, flow.client_lm = session_setup_strings(m, reply=False)


def negotiate_or_setup_reply(flow: Flow, m: bytes, cmd: int, wc: int) -> None:
    """NEGOTIATE and SESSION_SETUP_ANDX replies: dialect, SMBv1 use, NativeOS."""
    if cmd == NEGOTIATE:
        if wc >= 1:
            index = m[33] | (m[34] << 8)
            if index != 0xFFFF:
                flow.smb1_spoken = True
                dialects = flow.smb1_dialects
                if dialects is not None and index < len(dialects):
                    flow.dialect = dialects[index]
                elif flow.dialect is None:
                    flow.dialect = f"index {index}"
        return
    flow.smb1_spoken = True
    if flow.server_os is None:
        flow.server_os, flow.server_lm = session_setup_strings(m, reply=True)


class Smb1Inventory:
    """SMBv1 facts per (client, server, server port), bounded at ``max_pairs`` entries."""

    def __init__(self, max_pairs: int) -> None:
        self.max_pairs = max_pairs
        self.pairs: dict[tuple[bytes, bytes, int], dict[str, Any]] = {}
        self.dropped = 0

    def note(self, flow: Flow, source: str | None) -> None:
        """A flow of input ``source`` ended: add it if it shows SMBv1 use."""
        dialects = flow.smb1_dialects or []
        only_smb1 = bool(dialects) and not any(x.startswith("SMB 2") for x in dialects)
        if not (flow.smb1_spoken or only_smb1):
            return
        self.merge(
            (flow.client, flow.server, flow.sport),
            {
                "first_ts": flow.first_ts,
                "last_ts": flow.last_ts,
                "source": source,
                "flows": 1,
                "messages": flow.messages,
                "spoken": flow.smb1_spoken,
                "dialect": flow.dialect if flow.versions & 1 and not flow.versions & 6 else None,
                "client_offers_smb2": any(x.startswith("SMB 2") for x in dialects) if dialects else None,
                "client_native_os": flow.client_os,
                "client_native_lm": flow.client_lm,
                "server_native_os": flow.server_os,
                "server_native_lm": flow.server_lm,
            },
        )

    def merge(self, key: tuple[bytes, bytes, int], c: dict[str, Any]) -> None:
        """Add one flow's (or a worker's) SMBv1 facts about a client/server pair."""
        c_ts = c.get("_ts") or dict.fromkeys(_PAIR_TEXT, c["first_ts"])
        pair = self.pairs.get(key)
        if pair is None:
            if len(self.pairs) >= self.max_pairs:
                self.dropped += 1
                return
            self.pairs[key] = pair = dict(c)
            pair["_ts"] = {k: (c_ts[k] if c[k] is not None else math.inf) for k in _PAIR_TEXT}
            return
        if c["first_ts"] < pair["first_ts"]:
            pair["first_ts"] = c["first_ts"]
            pair["source"] = c["source"]
        pair["last_ts"] = max(pair["last_ts"], c["last_ts"])
        pair["flows"] += c["flows"]
        pair["messages"] += c["messages"]
        pair["spoken"] = pair["spoken"] or c["spoken"]
        if c["client_offers_smb2"] is not None:
            pair["client_offers_smb2"] = bool(pair["client_offers_smb2"]) or c["client_offers_smb2"]
        ts = pair["_ts"]
        for k in _PAIR_TEXT:  # the earliest flow's value wins (the same whatever the order)
            if c[k] is not None and (pair[k] is None or c_ts[k] < ts[k]):
                pair[k] = c[k]
                ts[k] = c_ts[k]

    def export(self) -> list:
        """The entries, JSON-able (for :meth:`load` in another process)."""
        return [
            [c.hex(), s.hex(), port, {**p, "_ts": {k: (v if v != math.inf else None) for k, v in p["_ts"].items()}}]
            for (c, s, port), p in self.pairs.items()
        ]

    def load(self, exported: list) -> None:
        """Merge the entries of another process's :meth:`export`."""
        for c, s, port, p in exported:
            p["_ts"] = {k: (math.inf if v is None else v) for k, v in p["_ts"].items()}
            self.merge((bytes.fromhex(c), bytes.fromhex(s), port), p)

    def usage_events(self, out: Events) -> None:
        """One ``smb1-usage`` event per entry (the pair's first input names its source)."""
        for (client, server, port), p in self.pairs.items():
            out.event(
                {
                    "timestamp": iso_time(p["first_ts"]),
                    "event_type": "smb1-usage",
                    out.source_key: p["source"],
                    "src_ip": format_addr(client),
                    "dest_ip": format_addr(server),
                    "dest_port": port,
                    "proto": "TCP",
                    "smb1": {
                        "client": format_addr(client),
                        "server": format_addr(server),
                        "server_port": port,
                        "spoken": p["spoken"],
                        "dialect": p["dialect"],
                        "client_offers_smb2": p["client_offers_smb2"],
                        "client_native_os": p["client_native_os"],
                        "client_native_lm": p["client_native_lm"],
                        "server_native_os": p["server_native_os"],
                        "server_native_lm": p["server_native_lm"],
                        "flows": p["flows"],
                        "messages": p["messages"],
                        "first_seen": iso_time(p["first_ts"]),
                        "last_seen": iso_time(p["last_ts"]),
                    },
                }
            )

    def speakers(self, limit: int = 50) -> list[dict[str, Any]]:
        """The entries for the summary: servers that answered in SMB1 first, then by address."""
        speakers = sorted(
            (
                {
                    "client": format_addr(c),
                    "server": format_addr(s),
                    "port": port,
                    "spoken": p["spoken"],
                    "dialect": p["dialect"],
                    "server_native_os": p["server_native_os"],
                }
                for (c, s, port), p in self.pairs.items()
            ),
            key=lambda x: (not x["spoken"], x["server"], x["client"]),
        )
        return speakers[:limit]
