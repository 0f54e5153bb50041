"""The remediation plans in the store, as the host pages offer them.

    index = Plans(store)
    index.for_host("10.0.0.5", ["WS01"])    # [(PlanInfo, group name or None)]
    index.script(3, "win7-2008r2-x64-apply.cmd")   # (file name, bytes) or None

`smbsentry plan` stores plan.json with the scripts it wrote (remediate.writer.stored_plan:
`script_files` maps each path of groups[].files to its text and encoding), so a
script downloads byte for byte as the plan folder has it.  A plan stored before
that (or by hand) has no scripts: its page says so rather than offering links
that fail.  Plans never change once stored, so each is read once and only what
the pages need is kept (which host is in which script group).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

MAX_PLANS = 256


@dataclass
class PlanInfo:
    id: int
    scan_id: int | None
    created: str | None
    lang: str | None
    as_of: str | None
    groups: dict[str, list[str]]  # group name -> its files (scripts/NAME-apply.ext, ...)
    scripts: set[str]  # the stored script paths
    by_address: dict[str, str | None] = field(default_factory=dict)  # host address -> its group (None: no script)
    by_name: dict[str, str | None] = field(default_factory=dict)  # for hosts the plan knows only by name
    hosts: int = 0

    def files(self, group: str | None) -> list[tuple[str, str, bool]]:
        """(file name, path, stored) of a group's scripts."""
        return [(p.rsplit("/", 1)[-1], p, p in self.scripts) for p in self.groups.get(group or "", [])]


def _info(meta: dict, data: dict) -> PlanInfo:
    data = data if isinstance(data, dict) else {}
    groups = {str(g.get("name")): [str(f) for f in g.get("files") or []] for g in data.get("groups") or [] if isinstance(g, dict)}
    stored = data.get("script_files") if isinstance(data.get("script_files"), dict) else {}
    info = PlanInfo(meta["id"], meta.get("scan_id"), meta.get("created"), data.get("lang"), data.get("as_of"), groups, set(stored))
    for h in data.get("hosts") or []:
        if not isinstance(h, dict):
            continue
        info.hosts += 1
        group = h.get("group") if isinstance(h.get("group"), str) else None
        if h.get("address"):
            info.by_address[str(h["address"])] = group
        elif h.get("name"):
            info.by_name.setdefault(str(h["name"]).upper(), group)
    return info


class Plans:
    def __init__(self, store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._info: dict[int, PlanInfo] = {}

    def all(self) -> list[PlanInfo]:
        """Every stored plan (the newest MAX_PLANS), each read from the store once."""
        index = self.store.plan_index()[-MAX_PLANS:]
        with self._lock:
            missing = [m for m in index if m["id"] not in self._info]
        for m in missing:
            info = _info(m, self.store.plan(m["id"]) or {})
            with self._lock:
                self._info[m["id"]] = info
        with self._lock:
            return [self._info[m["id"]] for m in index if m["id"] in self._info]

    def for_host(self, address: str, names: list[str]) -> list[tuple[PlanInfo, str | None]]:
        """The plans that include this host, newest first, with the host's script group."""
        out = []
        for info in reversed(self.all()):
            if address in info.by_address:
                out.append((info, info.by_address[address]))
                continue
            hit = next((n.upper() for n in names if n and n.upper() in info.by_name), None)
            if hit is not None:
                out.append((info, info.by_name[hit]))
        return out

    def script(self, plan_id: int, filename: str) -> tuple[str, bytes] | None:
        data = self.store.plan(plan_id)
        files = (data or {}).get("script_files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            return None
        for path, entry in files.items():
            if path.rsplit("/", 1)[-1] == filename and isinstance(entry, dict) and isinstance(entry.get("text"), str):
                try:
                    return filename, entry["text"].encode(str(entry.get("encoding") or "utf-8"), errors="replace")
                except LookupError:  # an encoding this Python does not know: the text as UTF-8
                    return filename, entry["text"].encode("utf-8", errors="replace")
        return None
