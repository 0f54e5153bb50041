"""Helpers for the dashboard tests: a seeded store, a live uvicorn server on 127.0.0.1 and
headless Chromium driven by Selenium (Debian's chromium + chromium-driver).

In CI (CI=true) a missing Chromium fails the browser tests; elsewhere they are skipped
with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "web"
LAB_RANGE = "127.54.0.1-19"
LAB_ALLOW = "127.54.0.0/24"
XSS = "<script>alert(1)</script>"
XSS_OS = '"><img src=x onerror=alert(2)>'
XSS_ADDRESS = "127.54.0.200"
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(port: int):
    from smbsentry.lab.background import BackgroundLab

    try:
        return BackgroundLab(LAB_RANGE, ports=[port], bind_mode="per-address").start()
    except OSError as exc:
        pytest.skip(f"cannot bind the lab on {LAB_RANGE}: {exc}")


def real_scan(db: Path, lab_port: int, targets: str = LAB_RANGE) -> None:
    """`smbsentry scan` against the lab, recorded in the store at `db`."""
    r = subprocess.run([sys.executable, "-m", "smbsentry.cli", "scan", targets, "--ports", str(lab_port), "--checks", "all",
                        "--db", str(db), "--format", "jsonl", "-o", os.devnull, "-q", "--timeout", "3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def xss_host() -> dict:
    return {
        "address": XSS_ADDRESS, "hostname": None, "ports": {"445": "open"},
        "smb1": {"enabled": True, "signing": "disabled", "native_os": XSS_OS, "native_lm": XSS, "primary_domain": XSS},
        "smb2": None,
        "identity": {"netbios_name": XSS, "netbios_domain": XSS, "dns_name": None, "os_name": XSS_OS},
        "findings": [{"id": "ms17-010", "status": "vulnerable", "severity": "critical", "title": "MS17-010 " + XSS,
                      "cves": ["CVE-2017-0144"], "references": [], "evidence": "evidence " + XSS, "reason": None,
                      "inferred": False, "port": 445}],
        "errors": [XSS], "duration_ms": 1,
    }


def seed(db: Path, lab_port: int) -> dict:
    """Two real scans of the lab, the hostile host, an audit and a plan.  Returns facts for asserts."""
    from smbsentry.store import Store

    real_scan(db, lab_port)
    real_scan(db, lab_port)
    with Store.open(str(db)) as store:
        first, second = sorted(s["id"] for s in store.scans())
        store.add_host(second, xss_host())
        store.flush()
        store.finish_scan(second)
        win7 = next(h for h in store.hosts(second, limit=None) if (h["identity"] or {}).get("netbios_name") == "DFIR-WIN7-X64")
        store.add_audit({"host": "DFIR-WIN7-X64", "address": win7["address"], "source": "systeminfo.txt",
                         "facts": {"os_name": "Microsoft Windows 7 Professional", "build": 7601, "installed_kbs": ["KB2479943"]},
                         "verdicts": [{"id": "ms17-010", "status": "missing", "evidence": "no MS17-010 update", "fix": ["KB4012212"]}]},
                        scan_id=second)
        store.add_plan({"title": "Patch MS17-010", "hosts": [win7["address"]],
                        "scripts": {"fix-ms17-010.ps1": "# install KB4012212\nwusa.exe windows6.1-kb4012212-x64.msu /quiet\n"}},
                       scan_id=second)
        ms17 = store.count_hosts(second, finding="ms17-010")
    return {"first": first, "second": second, "win7": win7["address"], "ms17": ms17}


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1:<free port> in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", browser), ("chromedriver (chromium-driver)", driver)) if not p]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium Python package (pip install -e '.[test]')")
    if missing:
        reason = f"browser tests need {', '.join(missing)}: run scripts/install-system-deps"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return browser, driver  # type: ignore[return-value]


def chrome(profile_dir: Path, download_dir: Path, extra_args: tuple[str, ...] = ()):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    os.environ.setdefault("SE_OFFLINE", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}",
                "--window-size=1280,1000", *extra_args):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False,
                                           "safebrowsing.enabled": False})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
    drv.set_page_load_timeout(30)
    drv.implicitly_wait(10)  # elements of the page a click just asked for
    try:
        drv.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    except Exception:  # noqa: BLE001 - older drivers: the prefs above do it
        pass
    return drv


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
