"""The one error type of inventory reading."""

from __future__ import annotations


class InventoryError(ValueError):
    """An inventory file (or one host in it) could not be read: str() names the file and line."""

    def __init__(self, path: str, line: int | None, message: str, host: str | None = None):
        self.path, self.line, self.message, self.host = str(path), line, message, host
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {'host ' + host + ': ' if host else ''}{message}")
