"""One directory expansion for every command that takes folders (issue 18, item 3): audit and respond
inventories, rules exports and result files read a folder the same way."""

from __future__ import annotations

from pathlib import Path

from smbsentry.audit.api import expand as audit_expand
from smbsentry.resultfile import _files as result_files
from smbsentry.rules.paths import expand as rules_expand
from smbsentry.textio import expand_files


def test_a_folder_is_its_visible_regular_files_in_name_order(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.csv", "a.json", ".DS_Store", ".a.json.swp", "sub/c.csv"):
        (folder / name).write_text("x", encoding="utf-8")
    single = tmp_path / ".given-by-name.csv"  # a file named on the command line is read, dot or not
    single.write_text("x", encoding="utf-8")
    want = [folder / "a.json", folder / "b.csv"]
    assert expand_files([folder]) == want
    assert expand_files([single, folder]) == [single, *want]
    assert audit_expand([folder]) == want
    assert result_files(folder) == want
    assert rules_expand([str(folder), "./x.txt"]) == [str(p) for p in want] + ["./x.txt"]  # the very strings given
    assert [Path(p) for p in rules_expand([str(folder)])] == audit_expand([str(folder)])
