"""The one error type of rule reading, so the CLI can print one line and exit 2."""

from __future__ import annotations


class RulesError(ValueError):
    """A rule export could not be read; str() is `FILE:WHERE: message`.

    `where` is a line number for text exports and a JSON path ($.a[0].b) for
    JSON ones, so the user can go straight to the offending entry.
    """

    def __init__(self, path: str, where: int | str | None, message: str):
        self.path, self.where, self.message = str(path), where, message
        loc = f"{self.path}:{where}" if where not in (None, "") else self.path
        super().__init__(f"{loc}: {message}")
