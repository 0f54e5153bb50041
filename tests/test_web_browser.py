"""The dashboard in real headless Chromium (Selenium + Debian's chromium-driver), against uvicorn on
127.0.0.1 and a store filled by real scans of a BackgroundLab.  Screenshots: test-artifacts/web/."""

from __future__ import annotations

import json
import time

import pytest


import webui as wb  # tests/webui.py: the dashboard's test fixtures


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    wb.chromium_paths()  # fail in CI, skip elsewhere, before any work
    from smbsentry.web import create_app

    port = wb.free_port()
    lab = wb.start_lab(port)
    tmp = tmp_path_factory.mktemp("webui")
    try:
        facts = wb.seed(tmp / "store.db", port)
        app = create_app(str(tmp / "store.db"), [wb.LAB_ALLOW])
        with wb.LiveServer(app) as server:
            downloads = tmp / "downloads"
            downloads.mkdir()
            driver = wb.chrome(tmp / "profile", downloads)
            try:
                yield {"facts": facts, "url": server.url, "driver": driver, "downloads": downloads, "lab_port": port, "app": app}
            finally:
                driver.quit()
                app.state.jobs.stop_all()
    finally:
        lab.stop()


def no_alert(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - raises when no dialog is open


def wait_for(cond, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_dashboard_in_chromium(env):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d, url, facts = env["driver"], env["url"], env["facts"]
    css = lambda sel: d.find_element(By.CSS_SELECTOR, sel)  # noqa: E731
    path = lambda: d.current_url[len(url):]  # noqa: E731

    # First run: every page leads to /setup.
    d.get(url + "/hosts")
    assert path() == "/setup"
    wb.shot(d, "01-setup")
    css("#token").send_keys(env["app"].state.setup_token.value)   # printed on smbsentry serve's console
    css("#password").send_keys(wb.PASSWORD)
    css("#password2").send_keys(wb.PASSWORD)
    css("#setup").click()
    wait_for(lambda: path().startswith("/login"), what="login page")
    assert "Admin password set" in css("#message").text

    # A wrong password first.
    css("#password").send_keys("not the password")
    css("#login").click()
    assert "Wrong user name or password" in css("#error").text
    wb.shot(d, "02-wrong-password")
    css("#password").send_keys(wb.PASSWORD)
    css("#login").click()
    wait_for(lambda: path() == "/", what="overview")

    # Overview with the charts.
    assert css("#tile-hosts").text == "20"
    assert len(d.find_elements(By.CSS_SELECTOR, "figure svg.chart")) >= 3
    assert "ms17-010" in css("#top-findings").text
    no_alert(d)
    wb.shot(d, "03-overview")

    # Hosts, filtered by finding ms17-010.
    css("#nav-hosts").click()
    wait_for(lambda: path().startswith("/hosts"), what="hosts page")
    Select(css("#f-finding")).select_by_value("ms17-010")
    css("#f-apply").click()
    wait_for(lambda: "finding=ms17-010" in path(), what="filtered hosts")
    rows = d.find_elements(By.CSS_SELECTOR, "tr.host-row")
    assert len(rows) == facts["ms17"] and css("#host-count").text == f"{facts['ms17']} hosts"
    assert all("ms17-010" in r.text for r in rows)
    # The hostile NetBIOS name shows as text, and no script ran.
    assert wb.XSS in [e.text for e in d.find_elements(By.CSS_SELECTOR, "td.host-name")]
    no_alert(d)
    wb.shot(d, "04-hosts-ms17-010")

    # Host detail of the hostile host.
    d.find_element(By.LINK_TEXT, wb.XSS_ADDRESS).click()
    wait_for(lambda: css("#host-address").text == wb.XSS_ADDRESS, what="hostile host page")
    assert css("#host-name").text == wb.XSS
    assert wb.XSS_OS in css("#fingerprint").text
    no_alert(d)
    assert d.execute_script("return document.querySelectorAll('main script, main img').length") == 0
    wb.shot(d, "05-host-hostile")

    # Host detail of the Windows 7 host with a plan: fingerprint, findings, audit facts, download.
    d.get(f"{url}/hosts/{facts['second']}/{facts['win7']}")
    assert "DFIR-WIN7-X64" in css("#fingerprint").text
    assert "ms17-010" in css("#findings").text and "vulnerable" in css("#findings").text
    assert "KB4012212" in d.page_source and "systeminfo.txt" in d.page_source
    wb.shot(d, "06-host-plan")
    css("a.plan-download").click()
    plan_file = env["downloads"] / "plan-1.json"
    wait_for(lambda: plan_file.exists() and plan_file.stat().st_size > 0, what="plan download")
    assert json.loads(plan_file.read_text())["title"] == "Patch MS17-010"
    css("a.script-download").click()
    script = env["downloads"] / "fix-ms17-010.ps1"
    wait_for(lambda: script.exists() and script.stat().st_size > 0, what="script download")
    assert "wusa.exe" in script.read_text()

    # A host without a plan says so and offers the store's plans.
    d.get(f"{url}/hosts/{facts['second']}/127.54.0.10")
    assert "No plan for this host" in css("#no-plan").text
    assert css("#all-plans a.plan-download")

    # Scans: history and diff.
    css("#nav-scans").click()
    wait_for(lambda: path() == "/scans", what="scans page")
    Select(css("#diff-old")).select_by_value(str(facts["first"]))
    Select(css("#diff-new")).select_by_value(str(facts["second"]))
    css("#diff").click()
    wait_for(lambda: path().startswith("/diff"), what="diff page")
    assert wb.XSS_ADDRESS in d.page_source
    no_alert(d)
    wb.shot(d, "07-diff")

    # Start a scan: refused outside the allowed ranges, then run on the lab with live progress.
    css("#nav-scans").click()
    css("#targets").send_keys("10.0.0.1")
    css("#start").click()
    assert "outside the allowed ranges" in css("#error").text
    wb.shot(d, "08-scan-refused")
    css("#targets").clear()
    css("#targets").send_keys("127.54.0.1-19")
    css("#ports").clear()
    css("#ports").send_keys(str(env["lab_port"]))
    Select(css("#checks")).select_by_value("all")
    css("#start").click()
    wait_for(lambda: path().startswith("/jobs/"), what="job page")
    wait_for(lambda: css("#progress").get_attribute("data-done") == "1", timeout=120, what="scan to finish")
    assert css("#job-state").text.startswith("finished")
    assert css("#job-hosts").text == "19"
    assert len(d.find_elements(By.CSS_SELECTOR, "tr.job-host")) == 19
    no_alert(d)
    wb.shot(d, "09-scan-progress")

    # Log out: the session is gone.
    css("#logout").click()
    wait_for(lambda: path().startswith("/login"), what="login after logout")
    d.get(url + "/")
    assert path().startswith("/login?next=")
    wb.shot(d, "10-logged-out")
