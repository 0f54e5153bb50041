"""A page's visible text without data, and the English words a Chinese page must not show
(the zh HTML report and the zh dashboard pages are checked with these).

Data is skipped: remote strings, values, host names, addresses and OS names (the
writers mark them with the classes r, v, h, a, os) and code, pre, title and style."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from smbsentry import i18n

SKIP_CLASSES = {"r", "v", "h", "a", "os"}  # remote strings, values, host names, addresses, OS names
VOID = ("br", "meta", "rect", "circle", "line", "polyline", "input", "link", "col", "img")


class Text(HTMLParser):
    """The page's visible text, without remote strings, values, host names and addresses."""

    def __init__(self):
        super().__init__()
        self.stack: list[bool] = []
        self.skip = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        skip = tag in ("code", "style", "title", "pre", "script") or bool(SKIP_CLASSES & set((dict(attrs).get("class") or "").split()))
        self.stack.append(skip)
        self.skip += skip

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.stack:
            self.skip -= self.stack.pop()

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible(html: str) -> str:
    p = Text()
    p.feed(html)
    return " ".join(p.parts)


def english_words(groups=("status", "severity", "role", "rank", "report", "chart", "arsenal"), shortest: int = 2) -> list[str]:
    """The English status and label words: statuses, severities, roles, ranks and every label of
    the given catalog groups (their literal parts, where a label has placeholders), less the
    words the Chinese catalog itself uses (UTC, JSON, CSV, Samba ...) and single lower-case
    words shorter than `shortest` ("all", "no": commands and settings quoted in advice use them)."""
    zh = " ".join(text for group in groups for text in i18n.labels(group, "zh").values())
    words = set()
    for group in groups:
        for key, text in i18n.labels(group, "en").items():
            for part in re.split(r"\{[a-z_]+\}", text):
                part = part.strip(" :;,.()`")
                if " " not in part and part.islower() and len(part) < shortest:
                    continue
                if len(part) >= 2 and not part.startswith("smbsentry") and part not in ("SMBv1 on",) and part not in zh:
                    words.add(part)
    words |= {"vulnerable", "likely", "not_vulnerable", "unknown", "critical", "high", "medium", "low", "Evidence",
              "Reason", "Status", "Severity", "How to fix", "Hosts", "Host", "Finding", "Findings", "Address", "Name"}
    return sorted(words)


def english_found(text: str, words: list[str]) -> list[str]:
    """The words `text` shows outside `backticked` commands and settings (smb.conf lines, shell)."""
    text = re.sub(r"`[^`]*`", " ", text)
    return [w for w in words if re.search(rf"(?<![A-Za-z_-]){re.escape(w)}(?![A-Za-z_-])", text)]
