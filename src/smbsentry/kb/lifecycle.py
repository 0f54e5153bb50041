"""End-of-support dates per product (kb/data/lifecycle.json)."""

from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def _products() -> dict:
    raw = json.loads(resources.files("smbsentry.kb").joinpath("data/lifecycle.json").read_text("utf-8"))
    return raw["products"]


def end_of_support(product: str) -> date | None:
    entry = _products().get(product)
    return date.fromisoformat(entry["end"]) if entry else None
