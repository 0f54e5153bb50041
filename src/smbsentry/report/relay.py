"""The "relay paths" section of the report and the relay target list.

Both read the same paths as the `ntlm-relay` check (checks/relay.py) from
the stored records, so a scan with the default checks still gets its SMB
relay targets (the negotiate's signing mode is always recorded); HTTP and
LDAP paths appear when the scan probed the other services.  The list file
starts in NetExec's `--gen-relay-list` format (one address per line: the
hosts whose SMB server accepts a relayed NTLM session); the other protocols'
open or likely targets follow as URLs (http://a:80/certsrv/, ldap://a:389),
the form ntlmrelayx's target file reads beside bare addresses.
"""

from __future__ import annotations

from .. import i18n
from ..checks.relay import relay_paths, relay_urls, smb_relay_target
from .arsenal import address_key


def relay_list(records: list[dict]) -> str:
    """Addresses whose SMB server does not require signing on some dialect, one per line, in address order;
    then the HTTP, HTTPS and LDAP targets as URLs, in address order."""
    ordered = sorted(records, key=lambda h: address_key(h["address"]))
    hits = [h["address"] for h in ordered if smb_relay_target(h)]
    urls = [u for h in ordered for u in relay_urls(h)]
    return "".join(f"{a}\n" for a in hits + urls)


def relay_section(records: list[dict], lang: str) -> dict:
    """{"rows": [(address, name, protocol, port, state, label, detail)], "targets": n, "hosts": n} for the template."""
    t = i18n.labels("report", lang)
    labels = {True: ("vulnerable", t["relay_open"]), "likely": ("likely", t["relay_likely"]),
              False: ("not_vulnerable", t["relay_closed"]), None: ("unknown", t["relay_unknown"])}
    rows, targets, hosts = [], 0, 0
    for h in sorted(records, key=lambda h: address_key(h["address"])):
        paths = relay_paths(h)
        if not paths:
            continue
        hosts += 1
        targets += smb_relay_target(h)
        name = (h.get("identity") or {}).get("netbios_name") or ""
        for p in paths:
            state, label = labels[p["relay"]]
            rows.append((h["address"], name, p["protocol"], p["port"], state, label, i18n.sentence_html(p["text"], lang)))
    return {"rows": rows, "targets": targets, "hosts": hosts}
