"""The dashboard's language: English or Simplified Chinese, chosen per browser.

    install(app, env)            # the middleware and the template filters
    request.state.lang           # "en" | "zh" for the page being answered
    message(text, "zh")          # one of the dashboard's English messages in Chinese

`?lang=zh` (or `en`) on any page sets the language and a cookie remembers it
for the next pages; without either, English; any other `?lang=` is a 400.  The JSON API stays
language-neutral.  Every word a page shows comes from the i18n catalog (the
`web` group; statuses, severities, roles and ranks from theirs); evidence
sentences go through i18n.sentence_html.  Error texts are written in English
where they are raised (the API answers them as they are) and rendered in
Chinese by the `msg` group's patterns, the same way sentences are: a text
no pattern fits is shown as it is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlencode

from markupsafe import Markup, escape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n

LANG_COOKIE = "smbsentry_lang"
YEAR = 365 * 24 * 3600
PLACE = re.compile(r"\{([a-z_]+)\}")


def choose(query_lang: str | None, cookie_lang: str | None) -> tuple[str, bool]:
    """(language, whether to remember it): the query's when valid, else the cookie's, else English."""
    if query_lang in i18n.LANGS:
        return query_lang, query_lang != cookie_lang
    return (cookie_lang if cookie_lang in i18n.LANGS else "en"), False


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[re.Pattern, str]]:
    en, zh = i18n.labels("msg", "en"), i18n.labels("msg", "zh")
    out = []
    for key, text in en.items():
        parts, pos = [], 0
        for m in PLACE.finditer(text):
            parts.append(re.escape(text[pos:m.start()]) + f"(?P<{m.group(1)}>.+?)")
            pos = m.end()
        parts.append(re.escape(text[pos:]))
        out.append((len(PLACE.sub("", text)), re.compile("".join(parts) + r"\Z", re.S), zh[key]))
    out.sort(key=lambda x: -x[0])  # the most specific first: "no scan job {id}" before "no scan {id}"
    return [(rx, zh) for _, rx, zh in out]


def message(text: str | None, lang: str) -> Markup:
    """The dashboard's own message in `lang`, escaped; in Chinese the values it names (ids, the
    accepted parameter values, addresses) in <span class="v">, as evidence sentences have them."""
    text = "" if text is None else str(text)
    if lang != "en" and text and len(text) <= 2000:
        for rx, zh in _patterns():
            m = rx.match(text)
            if m:
                return Markup(escape(zh).format(**{k: Markup(i18n.VALUE_SPAN).format(v) for k, v in m.groupdict().items()}))
    return escape(text)


def sentence(text: str | None, lang: str) -> Markup:
    """An evidence sentence in `lang` (i18n.sentence_html); one the catalog has no Chinese pattern
    for stays English, marked as such (lang="en"), never passed off as translated."""
    out = i18n.sentence_html(text, lang)
    if lang != "en" and text and not i18n.translated(str(text), lang):
        return Markup('<span lang="en" class="untranslated">{}</span>').format(out)
    return out


def switch_url(path: str, query: list[tuple[str, str]], lang: str) -> str:
    """This page in the other language."""
    return path + "?" + urlencode([(k, v) for k, v in query if k != "lang"] + [("lang", lang)])


def _labels(lang: str) -> dict[str, str]:
    return i18n.labels("web", lang)


def install(app, env) -> None:
    """Template filters and globals, and the middleware that picks each request's language."""
    i18n.install(env)
    env.filters["msg"] = message
    env.filters["sentence"] = sentence
    env.globals["web_labels"] = _labels
    env.globals["switch_url"] = switch_url

    app.add_middleware(Language)


def known_lang(request: Request) -> None:
    """A route dependency: `?lang=` other than en or zh is a bad request (400), not silently English."""
    asked = request.query_params.get("lang")
    if asked is not None and asked not in i18n.LANGS:
        raise HTTPException(400, f"bad lang (one of {', '.join(i18n.LANGS)})")


class Language:
    """Picks each request's language into request.state.lang and remembers a chosen one in a cookie.
    Plain ASGI, not BaseHTTPMiddleware: the request body passes through untouched, so the body cap of
    security.Guard around it still answers 413 from inside the route."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        lang, remember = choose(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
        scope.setdefault("state", {})["lang"] = lang
        if not remember:
            return await self.app(scope, receive, send)
        cookie = Response()
        cookie.set_cookie(LANG_COOKIE, lang, max_age=YEAR, path="/", httponly=True, samesite="strict",
                          secure=scope.get("scheme") == "https")
        extra = [(k, v) for k, v in cookie.raw_headers if k == b"set-cookie"]

        async def with_cookie(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*(message.get("headers") or []), *extra]}
            await send(message)

        await self.app(scope, receive, with_cookie)
