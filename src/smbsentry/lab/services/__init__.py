"""The service lab: RDP, HTTP/WebDAV, Kerberos, SMTP, IMAP, Lotus Notes, WorldClient
and NBNS answers per loopback address, for the Shadow Brokers exposure checks.

Profiles live in profiles.json here (lab/profiles.py's strict schema has no
"services" key).  `serve_services(range, mix)` serves until cancelled;
`ServiceLab` is the start()/stop() form the tests use.
"""

from .server import PROFILES, ServiceLab, load_profiles, parse_service_mix, serve_services

__all__ = ["PROFILES", "ServiceLab", "load_profiles", "parse_service_mix", "serve_services"]
