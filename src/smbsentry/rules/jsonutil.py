"""Small helpers for JSON exports: typed field access that fails with a JSON path."""

from __future__ import annotations

from .errors import RulesError


class J:
    """Read fields of one JSON object, raising RulesError with `$.path` on wrong shapes."""

    def __init__(self, path: str, obj, where: str):
        self.path, self.obj, self.where = path, obj, where
        if not isinstance(obj, dict):
            raise RulesError(path, where, f"expected an object, got {type(obj).__name__}")

    def get(self, key: str, kind=None, default=None, required: bool = False):
        if key not in self.obj or self.obj[key] is None:
            if required:
                raise RulesError(self.path, self.where, f"missing field {key!r}")
            return default
        v = self.obj[key]
        if kind is not None and not isinstance(v, kind):
            raise RulesError(self.path, f"{self.where}.{key}", f"expected {_name(kind)}, got {v!r}")
        return v

    def list(self, key: str) -> list:
        return self.get(key, list, [])

    def at(self, *parts) -> str:
        w = self.where
        for p in parts:
            w += f"[{p}]" if isinstance(p, int) else f".{p}"
        return w

    def fail(self, message: str, *parts) -> RulesError:
        return RulesError(self.path, self.at(*parts), message)


def _name(kind) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__
