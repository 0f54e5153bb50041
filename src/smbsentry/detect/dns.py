"""The question of a DNS message, and the WannaCry kill-switch domains.

WannaCry resolves (and then connects to) a hard-coded domain before it
spreads; if the domain answers it stops.  A host looking one up is infected.
The list holds the original sample's domain and the variants published
during the outbreak (sinkholed since).
"""

from __future__ import annotations

__all__ = ["KILLSWITCH_DOMAINS", "DnsQuestion", "killswitch_domain", "parse_question"]

KILLSWITCH_DOMAINS = (
    "iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com",  # first sample, 2017-05-12
    "ifferfsodp9ifjaposdfjhgosurijfaewrwergwea.com",  # second variant
    "iuqssfsodp9ifjaposdfjhgosurijfaewrwergwea.com",
    "ayylmaotjhsstasdfasdfasdfasdfasdfasdfasdf.com",
    "iuqerfsodp9ifjaposdfjhgosurijfaewrwergweb.com",
    "ifferfsodp9ifjaposdfjhgosurijfaewrwergwea.test",
    "ifferfsodp9ifjaposdfjhgosurijfaewrwergwea.testing",
)

#: (is_response, name, qtype)
DnsQuestion = tuple[bool, str, int]


def parse_question(payload: bytes) -> DnsQuestion | None:
    """The first question of a DNS message, or None when there is none or it is malformed.

    The name is lower-cased, without the trailing dot; labels are decoded as
    Latin-1 (any byte is kept).  Compression pointers are not followed (they
    do not occur in the question of a query).
    """
    n = len(payload)
    if n < 17:  # header + root name + type + class
        return None
    qdcount = (payload[4] << 8) | payload[5]
    if qdcount == 0:
        return None
    pos = 12
    labels: list[bytes] = []
    total = 0
    while True:
        if pos >= n:
            return None
        ln = payload[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0:
            return None
        total += ln + 1
        if total > 255 or pos + 1 + ln > n:
            return None
        labels.append(payload[pos + 1 : pos + 1 + ln])
        pos += 1 + ln
    if pos + 4 > n:
        return None
    qtype = (payload[pos] << 8) | payload[pos + 1]
    name = b".".join(labels).decode("latin-1").lower()
    return bool(payload[2] & 0x80), name, qtype


def killswitch_domain(name: str) -> str | None:
    """The kill-switch domain ``name`` is (or is under, e.g. ``www.``), else None."""
    for domain in KILLSWITCH_DOMAINS:
        if name == domain or name.endswith("." + domain):
            return domain
    return None
