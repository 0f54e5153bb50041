"""The application layer's scan request: how the dashboard hands a scan to its worker process."""

from __future__ import annotations

from pathlib import Path

import pytest

from smbsentry.app.scanprep import RequestError, ScanRequest, request_from_json, request_to_json


def test_a_request_goes_to_the_worker_and_back_unchanged():
    req = ScanRequest(["127.54.0.1-5"], [Path("hosts.xml")], ["127.54.0.3"], ports="445", checks="all", db="sqlite:///x.db",
                      output=Path("/dev/null"), quiet=True, resume=None)
    assert request_from_json(request_to_json(req)) == req
    assert request_from_json(request_to_json(ScanRequest())) == ScanRequest()


@pytest.mark.parametrize("text", ["", "[]", "nonsense", '{"targets": ["a"], "command": "rm"}', '{"timeout": "x", "nope": 1}',
                                  "[" * 100000])
def test_anything_else_is_refused_in_one_line(text):
    with pytest.raises(RequestError) as exc:
        request_from_json(text)
    assert str(exc.value).startswith("bad scan request") and "\n" not in str(exc.value)
