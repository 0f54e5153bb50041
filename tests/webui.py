"""Helpers for the dashboard tests: a seeded store, a live uvicorn server on 127.0.0.1 and
headless Chromium driven by Selenium (Debian's chromium + chromium-driver).

In CI (CI=true) a missing Chromium fails the browser tests; elsewhere they are skipped
with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "web"
LAB_RANGE = "127.54.0.1-19"
LAB_ALLOW = "127.54.0.0/24"
XSS = "<script>alert(1)</script>"
XSS_OS = '"><img src=x onerror=alert(2)>'
XSS_ADDRESS = "127.54.0.200"
PASSWORD = "correct horse battery"


ROOT = os.geteuid() == 0
LONG_ADDRESS = "127.54.0.201"
LONG_NAME = "<b>" + "W" * 190 + "</b>"  # 200 characters, no break opportunity, markup inside
TWIN_SALES, TWIN_LABS = "127.54.0.210", "127.54.0.211"  # both NetBIOS name TWIN, in two domains
RELAY_DC, RELAY_XSS, RELAY_LONG, RELAY_SIGNED = "127.54.2.1", "127.54.2.2", "127.54.2.3", "127.54.2.4"
RELAY_WORKGROUP = "127.54.2.5"
SYSTEMINFO = REPO / "tests" / "data" / "inventories" / "systeminfo-win7-en-cp437.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_port() -> int:
    """445 as root (where `detect` sees the SMB traffic the seed records), else a free high port."""
    return 445 if ROOT else free_port()


def start_lab(port: int):
    from smbsentry.lab.background import BackgroundLab

    try:
        return BackgroundLab(LAB_RANGE, ports=[port], bind_mode="per-address").start()
    except OSError as exc:
        pytest.skip(f"cannot bind the lab on {LAB_RANGE}: {exc}")


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "smbsentry.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


def real_scan(db: Path, lab_port: int, targets: str = LAB_RANGE) -> None:
    """`smbsentry scan` against the lab, recorded in the store at `db`."""
    cli("scan", targets, "--ports", lab_port, "--checks", "all", "--db", db, "--format", "jsonl", "-o", os.devnull, "-q",
        "--timeout", "3")


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


def named_host(address: str, name: str, domain: str, os_name: str = "Windows Server 2022") -> dict:
    """A host whose SMB answered with this NetBIOS name and domain, nothing to fix."""
    return {"address": address, "hostname": None, "ports": {"445": "open"}, "smb1": {"enabled": False}, "smb2": None,
            "identity": {"netbios_name": name, "netbios_domain": domain, "dns_name": None, "os_name": os_name},
            "findings": [{"id": "smbv1-enabled", "status": "not_vulnerable", "severity": "high", "title": "SMBv1",
                          "cves": [], "references": [], "evidence": "NT LM 0.12 negotiate refused on 445", "reason": None,
                          "inferred": False, "port": 445}],
            "errors": [], "duration_ms": 1}


def relay_host(address: str, name: str, smb2: str | None, smb1: str | None = None, services: dict | None = None,
               workgroup: bool = False) -> dict:
    """A host record as the scan stores it with `--checks all`: the negotiate's signing modes, the service
    probes' facts, and the ntlm-relay finding the check wrote from them. `workgroup`: its NTLM domain is its
    own name, so the check did not probe HTTP, HTTPS and LDAP there (checks.relay.not_probed_reason)."""
    from smbsentry.checks.relay import relay_paths

    identity = {"netbios_name": name, "netbios_domain": name if workgroup else "CORP", "dns_name": None,
                "os_name": "Windows Server 2022"}
    if workgroup:
        identity.update(source="smb2-ntlm", implementation="windows")
    h = {"address": address, "hostname": None, "ports": {"445": "open", "139": "closed"},
         "smb1": {"enabled": True, "signing": smb1} if smb1 else {"enabled": False},
         "smb2": {"dialects": ["2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"], "signing": smb2} if smb2 else None,
         "identity": identity, "services": services or {}, "errors": [], "duration_ms": 1}
    paths = relay_paths(h, relay_check=True)
    status = ("vulnerable" if any(p["relay"] is True for p in paths) else "likely" if any(p["relay"] == "likely" for p in paths)
              else "unknown" if any(p["relay"] in (None, "not_probed") for p in paths) else "not_vulnerable")
    h["findings"] = [{"id": "ntlm-relay", "status": status, "severity": "high", "title": "NTLM relay",
                      "cves": [], "references": [], "evidence": "; ".join(p["text"] for p in paths), "reason": None,
                      "inferred": False, "port": 445}]
    return h


def add_relay_scan(store) -> int:
    """One scan with every kind of relay path: a domain controller requiring SMB signing with NTLM over HTTP,
    AD CS web enrollment over HTTPS and LDAP (no bind: not visible); SMB1 and SMB2 without signing under the
    hostile name; the 200-character name without signing; a host that requires signing; a workgroup host that
    requires signing, whose HTTP, HTTPS and LDAP the check did not probe.  Returns its id."""
    dc_services = {"http": {"port": 80, "status": 401, "auth": ["NTLM"]},
                   "https": {"port": 443, "status": 200, "auth": [], "certsrv": {"auth": ["Negotiate", "NTLM"]}},
                   "ldap": {"port": 389, "domain_controller": True}}
    sid = store.begin_scan(["127.54.2.0/29"], {"checks": "all", "ports": [445, 139]})
    store.add_host(sid, relay_host(RELAY_DC, "DC01", "required", services=dc_services))
    store.add_host(sid, relay_host(RELAY_XSS, XSS, "enabled", smb1="disabled"))
    store.add_host(sid, relay_host(RELAY_LONG, LONG_NAME, "enabled"))
    store.add_host(sid, relay_host(RELAY_SIGNED, "SIGNED", "required"))
    store.add_host(sid, relay_host(RELAY_WORKGROUP, "WS-WG", "required", workgroup=True))
    store.finish_scan(sid)
    return sid


def record_smb1_traffic(db: Path, port: int, address: str, tmp: Path) -> bool:
    """Capture a real SMB1 dialogue with the lab host (dumpcap on lo while `smbsentry scan` talks to it)
    and record it with `smbsentry detect --store`.  Needs root and port 445 (where detect looks)."""
    dumpcap = shutil.which("dumpcap")
    if not ROOT or port != 445 or not dumpcap:
        return False
    pcap = tmp / "smb1-traffic.pcap"
    proc = subprocess.Popen([dumpcap, "-i", "lo", "-f", f"host {address} and tcp port {port}", "-w", str(pcap), "-q"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "Capturing on" in proc.stderr.readline(), "dumpcap did not start"
        time.sleep(0.3)
        cli("scan", address, "--ports", port, "--checks", "default", "--no-store", "--format", "jsonl", "-o", os.devnull, "-q",
            "--timeout", "3")
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    cli("detect", pcap, "--store", "--db", db, "-o", os.devnull, "-q")
    return True


def seed(db: Path, lab_port: int) -> dict:
    """Two real scans of the lab plus hostile and same-named hosts, a real audit (systeminfo of the
    lab's Windows 7 host, whose update the scan contradicts), inventories keyed by address and by a
    shared name, the SMB1 traffic `detect --store` recorded (as root), and the plan `smbsentry plan`
    stored with its scripts.  Returns facts for asserts."""
    from smbsentry.store import Store

    real_scan(db, lab_port)
    real_scan(db, lab_port)
    tmp = db.parent
    with Store.open(str(db)) as store:
        first, second = sorted(s["id"] for s in store.scans())
        store.add_host(second, xss_host())
        store.add_host(second, {**named_host(LONG_ADDRESS, LONG_NAME, "HOSTILE", os_name="Windows " + "9" * 120)})
        store.add_host(second, named_host(TWIN_SALES, "TWIN", "SALES"))
        store.add_host(second, named_host(TWIN_LABS, "TWIN", "LABS"))
        store.flush()
        store.finish_scan(second)
        hosts = {(h["identity"] or {}).get("netbios_name"): h["address"] for h in store.hosts(second, limit=None)}
        win7, w2k8 = hosts["DFIR-WIN7-X64"], hosts["W2K8SP2"]
        # keyed by address only (its name is not the scan's); keyed by a name two hosts share; by name and domain
        store.add_audit({"host": "ASSET-4711", "address": w2k8, "source": "cmdb-export.csv",
                         "facts": {"os_name": "Windows Server 2008 SP2", "installed_kbs": ["KB4012598"]},
                         "verdicts": [{"id": "ms17-010", "status": "patched", "evidence": "KB4012598 is installed", "fix": None}]})
        store.add_audit({"host": "TWIN", "source": "twin-bare.csv", "facts": {"installed_kbs": ["KB0000001"]}, "verdicts": []})
        store.add_audit({"host": "TWIN", "source": "twin-labs.csv", "facts": {"domain": "LABS", "installed_kbs": ["KB0000002"]},
                         "verdicts": []})
        ms17 = store.count_hosts(second, finding="ms17-010")
    systeminfo = tmp / "DFIR-WIN7-X64.txt"
    systeminfo.write_bytes(SYSTEMINFO.read_bytes().replace(b"WS-FIN-03", b"DFIR-WIN7-X64"))
    cli("audit", systeminfo, "--db", db, "--format", "json", "-o", os.devnull)
    usage = record_smb1_traffic(db, lab_port, hosts["XPSP3-LAB"], tmp)
    cli("plan", "--scan", second, "--db", db, "-o", tmp / "plan")
    with Store.open(str(db)) as store:
        plan_id = store.plan_index()[-1]["id"]
    return {"first": first, "second": second, "win7": win7, "w2k8": w2k8, "xp": hosts["XPSP3-LAB"], "ms17": ms17,
            "implant": hosts["IE11WIN7"], "silent": "127.54.0.15", "garbage": "127.54.0.16", "clean": TWIN_SALES,
            "plan": plan_id, "plan_dir": tmp / "plan", "usage": usage, "systeminfo": systeminfo.name}


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
