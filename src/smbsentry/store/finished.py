"""A run that is not a network scan (firewall rules read, SMB1 use seen in traffic) kept as one scan.

`rules --store` and `detect --store` both record what they found in one go; the
scan is "finished" only when every host record was added, "interrupted" otherwise,
so a half-written run never looks complete."""

from __future__ import annotations

from collections.abc import Iterable


def record_finished(store, targets: list[str], options: dict, hosts: Iterable[dict]) -> int:
    """Begin a scan, add every host, finish it; returns its id (StoreError or the writer's error on failure)."""
    sid = store.begin_scan(targets, options)
    try:
        for h in hosts:
            store.add_host(sid, h)
    except BaseException:
        store.finish_scan(sid, "interrupted")
        raise
    store.finish_scan(sid, "finished")
    return sid
