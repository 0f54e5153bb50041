"""Compare scan results with a lab manifest: the proof a scan was right.

The manifest maps every address to its profile and the findings a correct
scanner must report (`smbv1-enabled` is keyed per port: `smbv1-enabled:445`).
The demo and the benchmarks use this to print how many hosts a scan got
exactly right, and which findings differ where it did not.
"""

from __future__ import annotations

from typing import Any


def finding_key(finding: dict[str, Any]) -> str:
    return f"{finding['id']}:{finding['port']}" if finding["id"] == "smbv1-enabled" else finding["id"]


def mismatches(host: dict[str, Any], expected: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """{finding key: (expected status, reported status or None)} for every difference."""
    got = {finding_key(f): f["status"] for f in host.get("findings", [])}
    return {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}


def score(hosts: list[dict[str, Any]], manifest: dict[str, dict[str, Any]]) -> tuple[int, int, dict[str, dict]]:
    """(hosts exactly right, hosts in the manifest, {address: mismatches})."""
    by_addr = {h["address"]: h for h in hosts}
    wrong: dict[str, dict] = {}
    for address, entry in manifest.items():
        host = by_addr.get(address, {"address": address, "findings": []})
        diff = mismatches(host, entry.get("expected", {}))
        if diff:
            wrong[address] = {"profile": entry.get("profile"), "differences": diff}
    return len(manifest) - len(wrong), len(manifest), wrong
