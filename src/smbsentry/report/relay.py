"""The "relay paths" section of the report and the relay target list.

Both read the same paths as the `ntlm-relay` check (checks/relay.py) from
the stored records, so a scan with the default checks still gets its SMB
relay targets (the negotiate's signing mode is always recorded); HTTP and
LDAP paths appear when the scan probed the other services.  The list file
starts in NetExec's `--gen-relay-list` format (one address per line: the
hosts whose SMB server accepts a relayed NTLM session); the other protocols'
open or likely targets follow as URLs (http://a:80/certsrv/, ldap://a:389),
the form ntlmrelayx's target file reads beside bare addresses.  Where the
check ran but did not probe HTTP, HTTPS and LDAP (a workgroup host: see
checks.relay.not_probed_reason), those paths are rows of their own, "not
probed" with the reason: never absent, never "refused".
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from markupsafe import Markup

from .. import i18n
from ..checks.relay import endpoint, relay_paths, relay_urls, smb_relay_target
from .arsenal import address_key


class RelayRow(NamedTuple):
    """One relay path of one host, as the report's section and the dashboard's relay pages show it."""
    address: str
    name: str
    protocol: str
    port: int | None
    state: str          # the status word the page colours by: vulnerable, likely, not_vulnerable, unknown, not_probed
    label: str          # the state in the page's language ("relay accepted", "可被中继")
    detail: Markup      # the evidence sentence in the page's language, remote parts marked
    endpoint: str       # smb://a, https://a:443/certsrv/, ldap://a:389 (checks.relay.endpoint)
    text: str           # the evidence as the check writes it (the dashboard's `sentence` filter marks what has no Chinese)


def relay_list(records: list[dict]) -> str:
    """Addresses whose SMB server does not require signing on some dialect, one per line, in address order;
    then the HTTP, HTTPS and LDAP targets as URLs, in address order."""
    ordered = sorted(records, key=lambda h: address_key(h["address"]))
    hits = [h["address"] for h in ordered if smb_relay_target(h)]
    urls = [u for h in ordered for u in relay_urls(h)]
    return "".join(f"{a}\n" for a in hits + urls)


def _labels(lang: str) -> dict:
    t = i18n.labels("report", lang)
    return {True: ("vulnerable", t["relay_open"]), "likely": ("likely", t["relay_likely"]),
            False: ("not_vulnerable", t["relay_closed"]), None: ("unknown", t["relay_unknown"]),
            "not_probed": ("not_probed", t["relay_not_probed"])}


def host_relay_rows(h: dict, lang: str, labels: dict | None = None) -> tuple[list[RelayRow], bool]:
    """One record's relay rows, and whether its SMB server is a relay target."""
    paths = relay_paths(h)
    if not paths:
        return [], False
    labels = labels or _labels(lang)
    name = (h.get("identity") or {}).get("netbios_name") or ""
    rows = []
    for p in paths:
        state, label = labels[p["relay"]]
        rows.append(RelayRow(h["address"], name, p["protocol"], p["port"], state, label,
                             i18n.sentence_html(p["text"], lang), endpoint(h["address"], p), p["text"]))
    return rows, smb_relay_target(h)


def relay_section(records: list[dict], lang: str, made: Callable[[dict], tuple | None] | None = None) -> dict:
    """{"rows": [RelayRow], "targets": n, "hosts": n} for the report's template and the dashboard's relay pages
    (web/routes/relay.py: the whole scan, or one host's record): one computation for both. `made(record)`:
    host_relay_rows() of that record made earlier (respond, while the scan ran), or None."""
    labels = _labels(lang)
    rows, targets, hosts = [], 0, 0
    for h in sorted(records, key=lambda h: address_key(h["address"])):
        got = made(h) if made is not None else None
        host, target = got if got is not None else host_relay_rows(h, lang, labels)
        if not host:
            continue
        hosts += 1
        targets += target
        rows += host
    return {"rows": rows, "targets": targets, "hosts": hosts}
