"""A self-contained HTML report of one scan (no network, no scripts), in English or Chinese.

    render(results, lang="en", title=None, scan=None, trend=None, plan=None)

`results` are HostResult objects or host dicts.  What the page shows is
computed in view.py (counts with their denominators, the ranked action
list, the fixes from each host's plan, the translated evidence); Jinja2 with
autoescaping writes every remote string (host names, NativeOS, share names,
banners) as text.  Labels come from the i18n catalog.
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import resources

import jinja2

from .. import i18n
from . import rows, view

LANGS = i18n.LANGS


def _env() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: resources.files("smbsentry.report").joinpath("templates", name).read_text("utf-8")
    )
    env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    i18n.install(env)
    # the long tables' rows, written in one pass with every value escaped (rows.py: a third of the page's time)
    env.filters.update(action_rows=rows.action_rows, finding_rows=rows.finding_rows, host_rows=rows.host_rows,
                       relay_rows=rows.relay_rows)
    return env


_ENV: jinja2.Environment | None = None


def env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = _env()
    return _ENV


def warm() -> None:
    """Compile the page's templates now: a process about to fork (respond) compiles them once, not once per
    child."""
    for name in ("scan.html.j2", "arsenal.html.j2"):
        env().get_template(name)


def records_of(results: list) -> list[dict]:
    return [r.to_dict() if hasattr(r, "to_dict") else r for r in results]


def render(results: list, lang: str = "en", title: str | None = None, scan: dict | None = None,
           trend: list | None = None, plan=None, pieces: dict | None = None) -> str:
    """The report; `scan` is the store's scan row, `trend` [(label, hosts, exposed)] oldest first,
    `plan` the remediation plan of these records in `lang` when the caller already made it, `pieces` the
    records' parts of the page made earlier (view.build)."""
    i18n.check_lang(lang)
    records = records_of(results)
    t = i18n.labels("report", lang)
    checks = ((scan or {}).get("options") or {}).get("checks")
    v = view.build(records, lang, scan=scan, trend=trend, plan=plan, pieces=pieces)
    return env().get_template("scan.html.j2").render(
        t=t, ta=i18n.labels("arsenal", lang), lang=lang, title=title or t["title"],
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), scan=scan,
        checks=checks if isinstance(checks, str) else None, v=v, arsenal=v["arsenal"],
    )
