"""app/follow.py: the scan's records read while the scan writes them (respond's writer child)."""

from __future__ import annotations

import json

from smbsentry.app.follow import ScanFollower
from smbsentry.report.convert import hosts_csv

RECORDS = [
    {"address": f"10.0.0.{i}", "hostname": f"ws{i}", "ports": {"445": "open"}, "smb1": None, "smb2": None,
     "identity": {"netbios_name": f"WS{i}", "os_name": "Windows 10 22H2 \u4e2d\u6587"}, "findings": [],
     "errors": [], "duration_ms": 10, "connections": 2}
    for i in range(1, 6)
]


def test_lines_are_taken_as_they_are_written_whole_lines_only(tmp_path):
    path = tmp_path / "scan.jsonl"
    follower = ScanFollower(path)
    follower.poll()  # the scan has not opened its output yet: nothing, no error
    assert follower.records == []
    texts = [json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS]
    with path.open("w", encoding="utf-8") as fh:
        fh.write(texts[0] + texts[1][:17])  # a host and the start of the next, as a flush can leave it
        fh.flush()
        follower.poll()
        assert follower.records == RECORDS[:1]
        fh.write(texts[1][17:] + "".join(texts[2:]).rstrip("\n"))  # the last line without its newline
        fh.flush()
        follower.poll()
        assert follower.records == RECORDS[:4]
    assert follower.finish() == RECORDS


def test_what_it_makes_is_what_the_writers_would_make(tmp_path):
    path = tmp_path / "scan.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    follower = ScanFollower(path)
    records = follower.finish()
    assert hosts_csv(records, follower.csv_lines) == hosts_csv(records)
    assert follower.json_texts == [json.dumps(r, ensure_ascii=False) for r in records]


def test_a_csv_row_read_from_the_record_is_the_row_of_its_host_result():
    """csv_row reads the record dict (respond's follower has no HostResult); scan --format csv passes
    HostResult.to_dict(): one function, so the two CSVs cannot drift. Checked on records with every field the
    row reads, and on a minimal one."""
    from smbsentry.report.convert import host_from_dict
    from smbsentry.report.output import csv_row

    full = {"address": "10.0.0.9", "hostname": "fs9", "ports": {"445": "open", "139": "closed"},
            "smb1": {"enabled": True, "signing": "disabled", "native_os": "Windows 5.1"},
            "smb2": {"dialects": ["2.0.2", "3.1.1"], "signing": "enabled", "compression": ["LZNT1"]},
            "identity": {"netbios_name": "FS9", "netbios_domain": "CORP", "dns_name": "fs9.corp", "os_name": "Windows 10",
                         "os_build": 18362, "samba_version": None, "null_session": True, "guest_session": False},
            "findings": [{"id": "ms17-010", "status": "vulnerable"}, {"id": "smbv1-enabled", "status": "likely"}],
            "errors": ["139: connection refused", "x"]}
    for rec in (full, RECORDS[0]):
        assert csv_row(rec) == csv_row(host_from_dict(rec).to_dict())
    row = csv_row(full)
    assert row[4:9] == ["yes", "disabled", "2.0.2 3.1.1", "enabled", "LZNT1"] and row[13] == "18362"
    assert row[16:] == ["yes", "no", "ms17-010:vulnerable smbv1-enabled:likely", "139: connection refused | x"]
