"""The scan's host records read while the scan writes them.

respond's writer is a child forked before the scan (app/forks.py `Deferred`);
while it waits it calls `ScanFollower.poll()`: every complete line of
scan.jsonl is parsed, and its hosts.csv row and report.json text made, so that
after the scan none of that is left to do.

Only this light per-record work is done during the scan: planning each host
as it came (tried) made the scan itself slower by more than it saved after it,
on a machine whose cores the scan (and, on the lab, the emulated hosts) keep
busy.
"""

from __future__ import annotations

import json
from pathlib import Path

READ_CHUNK = 64 << 10  # about ten records a read: each read is a short step of the writer's idle work


class ScanFollower:
    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict] = []
        self.csv_lines: list[str] = []  # report.convert.csv_line of each record (respond's hosts.csv)
        self.json_texts: list[str] = []  # each record as report.json writes it
        self._fh = None
        self._rest = b""

    def poll(self) -> bool:
        """Take what the scan has written since the last call (complete lines only); whether there was any."""
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open while the scan writes
            except FileNotFoundError:
                return False  # the scan has not opened its output yet
        chunk = self._fh.read(READ_CHUNK)
        if chunk:
            *lines, self._rest = (self._rest + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    self._add(line)
        return bool(chunk)

    def finish(self) -> list[dict]:
        """Every record of the finished scan (what the file holds), in the order written."""
        while self.poll():
            pass
        if self._rest.strip():
            self._add(self._rest)
            self._rest = b""
        if self._fh is not None:
            self._fh.close()
        return self.records

    def _add(self, line: bytes) -> None:
        """One line: the record, its CSV row, and its JSON text, which is the line itself (the scan writes each
        record as json.dumps(record, ensure_ascii=False), as report.json does: no need to write it again)."""
        from ..report.convert import csv_line

        text = line.decode("utf-8").strip()
        rec = json.loads(text)
        self.records.append(rec)
        self.csv_lines.append(csv_line(rec))
        self.json_texts.append(text)
