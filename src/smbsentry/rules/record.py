"""A `smbsentry rules` run recorded in the store as a scan of kind "rules".

Design (issue 8: rule findings go into the same store and reports as scan findings):

* the run is one scan row; its options are {"kind": "rules", "files": [...],
  "ports": spec, "wide_threshold": n} (no schema change: kind lives in the
  options JSON), its targets the files as expanded;
* every container read (security group, NSG, iptables/nft chain, Windows
  Firewall export) becomes one host-like record, exposed or not, so a clean
  group is recorded as clean:
  - address: the cloud id for AWS/Alibaba/Azure (`sg-0a1b2c3d4e5f60718`,
    `nsg-files`), else `<platform>:<file name>:<container>` with `/` turned
    into `:` (`iptables:iptables-save.txt:filter:INPUT`) so it fits in a URL
    path segment; containers that map to the same address are merged;
  - identity.netbios_name: the container's display name (AWS group name,
    else the container name); identity.os_name stays null (nothing was
    learned about an operating system);
  - "kind": "rules" and "rules": {platform, sources, container} beside the
    contract's keys; ports stays empty (nothing was probed);
* every exposure becomes one finding with the single knowledge-base id
  `firewall-exposure`, status "vulnerable", the exposure's severity, port
  set, evidence "<rule> allows <proto>/<port> from <exposed_to> (<file>)"
  and details {platform, container, rule, protocol, exposed_to, source, fix}.
  The protocol is in the evidence and details, not in the store's finding
  key (address, id, port): a diff of two rules runs pairs tcp/137 with udp/137.
"""

from __future__ import annotations

from pathlib import Path

from .cli import expand
from .detect import read
from .errors import RulesError
from .evaluate import DEFAULT_WIDE_THRESHOLD, evaluate, parse_targets, relevance

FINDING_ID = "firewall-exposure"
CLOUD = ("aws", "aliyun", "azure")


def address_of(c) -> str:
    if c.platform in CLOUD:
        return c.name.replace("/", ":")
    return f"{c.platform}:{Path(c.source).name}:{c.name}".replace("/", ":")


def evaluate_files(paths: list[str], ports_spec: str | None = None, wide_threshold: int = DEFAULT_WIDE_THRESHOLD,
                   errors: list | None = None):
    """[(container, exposures)] of every file.  With `errors` (a list), a file
    that cannot be read adds its RulesError there and the others go on;
    without it the first one is raised, like scan_files.  A bad --ports
    raises ValueError either way."""
    targets = parse_targets(ports_spec)
    keep = relevance(targets, wide_threshold)
    out = []
    for p in expand(paths):
        try:
            found = [(c, evaluate(c, targets, wide_threshold)) for c in read(p, keep=keep)]
        except RulesError as exc:
            if errors is None:
                raise
            errors.append(exc)
            continue
        out += found
    return out


def _title() -> str:
    try:
        from ..kb.findings import meta

        return meta(FINDING_ID)["title"]
    except Exception:  # noqa: BLE001 - the title is cosmetic
        return "Firewall rule exposes SMB/RDP to a wide source"


def finding(e, title: str | None = None) -> dict:
    return {
        "id": FINDING_ID, "status": "vulnerable", "severity": e.severity, "title": title or _title(),
        "cves": [], "references": [],
        "evidence": f"{e.rule} allows {e.protocol}/{e.port} from {e.exposed_to} ({Path(e.source).name})",
        "reason": None, "inferred": False, "port": e.port,
        "details": {"platform": e.platform, "container": e.container, "rule": e.rule, "protocol": e.protocol,
                    "exposed_to": e.exposed_to, "source": e.source, "fix": e.fix},
    }


def host_records(results) -> list[dict]:
    """Host-like contract records, one per distinct container address, in first-seen order."""
    title = _title()
    hosts: dict[str, dict] = {}
    for c, exposures in results:
        addr = address_of(c)
        h = hosts.get(addr)
        if h is None:
            name = (c.data or {}).get("name") or c.name
            h = hosts[addr] = {
                "address": addr, "hostname": None, "ports": {}, "smb1": None, "smb2": None,
                "identity": {"netbios_name": str(name), "netbios_domain": None, "dns_name": None, "os_name": None},
                "findings": [], "errors": [], "duration_ms": 0, "connections": 0,
                "kind": "rules", "rules": {"platform": c.platform, "container": c.name, "sources": []},
            }
        if c.source not in h["rules"]["sources"]:
            h["rules"]["sources"].append(c.source)
        h["findings"] += [finding(e, title) for e in exposures]
    return list(hosts.values())


def record(store, paths: list[str], results, ports_spec: str | None, wide_threshold: int) -> int:
    """Write one finished scan of kind "rules"; returns its id."""
    files = expand(paths)
    sid = store.begin_scan(files, {"kind": "rules", "files": files, "ports": ports_spec or "default",
                                   "wide_threshold": wide_threshold})
    try:
        for h in host_records(results):
            store.add_host(sid, h)
    except BaseException:
        store.finish_scan(sid, "interrupted")
        raise
    store.finish_scan(sid, "finished")
    return sid
