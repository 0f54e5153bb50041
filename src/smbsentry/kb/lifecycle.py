"""End-of-support dates per product, from kb/data/products.json.

Callers pass the names builds.json uses ("Windows 7 SP1", "Windows XP",
"Windows Server 2008"): a product name or alias first, then a product line
(every service-pack level of a line shares the line's end date, which the
loader checks).
"""

from __future__ import annotations

from datetime import date

from .store import kb


def end_of_support(product: str) -> date | None:
    data = kb()
    entry = data.names.get(product)
    if entry is None:
        members = data.lines.get(product)
        entry = members[0] if members else None
    return entry.end_of_support if entry else None
