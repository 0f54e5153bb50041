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

    port = wb.lab_port()
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

    # Overview: the ranked list first, then the counts and the charts.
    assert css("#tile-hosts").text == "23"
    assert len(d.find_elements(By.CSS_SELECTOR, "figure svg.chart")) >= 3
    assert "ms17-010" in css("#top-findings").text
    first = d.find_elements(By.CSS_SELECTOR, "#actions-table tr.action")[0]
    assert first.get_attribute("data-address") == facts["implant"] and first.find_element(By.CSS_SELECTOR, ".badge").text == "ISOLATE"
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

    # The Windows 7 host: fingerprint, findings, the audit that contradicts the scan, the plan's scripts.
    d.get(f"{url}/hosts/{facts['second']}/{facts['win7']}")
    assert "DFIR-WIN7-X64" in css("#fingerprint").text
    assert "ms17-010" in css("#findings").text and "vulnerable" in css("#findings").text
    assert "KB4012212" in d.page_source and facts["systeminfo"] in d.page_source
    assert "The scan and the audit disagree on ms17-010" in css("#conflict").text
    wb.shot(d, "06-host-plan")
    css("a.plan-download").click()
    plan_file = env["downloads"] / f"plan-{facts['plan']}.json"
    wait_for(lambda: plan_file.exists() and plan_file.stat().st_size > 0, what="plan download")
    assert json.loads(plan_file.read_text())["format"] == "smbsentry-plan"
    link = css("a.script-download")
    name = link.text
    link.click()
    script = env["downloads"] / name
    wait_for(lambda: script.exists() and script.stat().st_size > 0, what="script download")
    assert script.read_bytes() == (facts["plan_dir"] / "scripts" / name).read_bytes()  # as `smbsentry plan` wrote it

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


def log_in(d, url: str) -> None:
    from selenium.webdriver.common.by import By

    d.get(url + "/login")
    if d.current_url.startswith(url + "/login"):
        d.find_element(By.CSS_SELECTOR, "#password").send_keys(wb.PASSWORD)
        d.find_element(By.CSS_SELECTOR, "#login").click()
        wait_for(lambda: not d.current_url.startswith(url + "/login"), what="login")


WIDTHS = """
const t = document.querySelector(arguments[0]);
return [t.getBoundingClientRect().right, document.documentElement.scrollWidth, document.documentElement.clientWidth];
"""


@pytest.mark.parametrize("lang, badge, untested, clean", [("en", "ISOLATE", "could not be tested", "nothing to do"),
                                                           ("zh", "隔离", "无法完成检测", "无需处置")])
def test_ranked_list_isolate_badge_and_untested_hosts(env, lang, badge, untested, clean):
    from selenium.webdriver.common.by import By

    d, url, facts = env["driver"], env["url"], env["facts"]
    css = lambda sel: d.find_element(By.CSS_SELECTOR, sel)  # noqa: E731
    d.set_window_size(1280, 1000)
    log_in(d, url)
    d.get(f"{url}/?scan={facts['second']}")
    switch = d.find_elements(By.CSS_SELECTOR, f"#lang-{lang}")
    if switch:  # the page is in the other language: the switch in the header
        switch[0].click()
        wait_for(lambda: d.find_element(By.TAG_NAME, "html").get_attribute("lang").startswith(lang), what=f"page in {lang}")
    rows = d.find_elements(By.CSS_SELECTOR, "#actions-table tr.action")
    assert rows[0].get_attribute("data-address") == facts["implant"]
    assert rows[0].find_element(By.CSS_SELECTOR, ".badge.isolate").text == badge
    assert sum(1 for r in rows if r.find_elements(By.CSS_SELECTOR, ".badge.isolate")) == 1
    wb.shot(d, f"11-ranked-{lang}")

    # Hosts by risk (the default): the isolate badge first; untested hosts marked, unlike clean ones.
    css("#nav-hosts").click()
    wait_for(lambda: "/hosts" in d.current_url, what="hosts page")
    d.get(f"{url}/hosts?scan={facts['second']}")
    hosts = d.find_elements(By.CSS_SELECTOR, "tr.host-row")
    assert hosts[0].find_element(By.CSS_SELECTOR, "a.host-link").text == facts["implant"]
    assert hosts[0].find_element(By.CSS_SELECTOR, ".badge.isolate").text == badge
    by_addr = {h.find_element(By.CSS_SELECTOR, "a.host-link").text: h for h in hosts}
    silent, quiet = by_addr[facts["silent"]], by_addr[facts["clean"]]
    assert silent.find_element(By.CSS_SELECTOR, ".untested-mark").text == untested
    assert quiet.find_element(By.CSS_SELECTOR, ".clean-mark").text == clean and not quiet.find_elements(By.CSS_SELECTOR, ".untested-mark")
    style = "return getComputedStyle(arguments[0]).backgroundColor"
    assert d.execute_script(style, silent.find_element(By.TAG_NAME, "td")) != d.execute_script(style, quiet.find_element(By.TAG_NAME, "td"))
    order = [h.find_element(By.CSS_SELECTOR, "a.host-link").text for h in hosts]
    assert order.index(facts["silent"]) < order.index(facts["clean"])
    wb.shot(d, f"12-hosts-risk-{lang}")


@pytest.mark.parametrize("width", [1280, 900])
def test_a_200_character_hostile_name_does_not_widen_the_table(env, width):
    from selenium.webdriver.common.by import By

    d, url, facts = env["driver"], env["url"], env["facts"]
    log_in(d, url)
    d.set_window_size(width, 1000)
    try:
        d.get(f"{url}/hosts?scan={facts['second']}&sort=name")
        names = [e.text for e in d.find_elements(By.CSS_SELECTOR, "td.host-name")]
        assert wb.LONG_NAME in names  # shown whole, as text
        right, scroll, viewport = d.execute_script(WIDTHS, "#hosts")
        assert right <= viewport and scroll <= viewport, (right, scroll, viewport)
        cell = next(e for e in d.find_elements(By.CSS_SELECTOR, "td.host-name") if e.text == wb.LONG_NAME)
        assert cell.size["height"] > 2 * 20  # it wrapped onto several lines
        wb.shot(d, f"13-long-name-{width}")
        d.get(f"{url}/hosts/{facts['second']}/{wb.LONG_ADDRESS}")
        assert css_text(d, "#host-name") == wb.LONG_NAME
        right, scroll, viewport = d.execute_script(WIDTHS, "#fingerprint")
        assert right <= viewport and scroll <= viewport, (right, scroll, viewport)
        no_alert(d)
    finally:
        d.set_window_size(1280, 1000)


def css_text(d, sel: str) -> str:
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, sel).text


@pytest.fixture(scope="module")
def relay_scan(env):
    """A scan with relay paths of every kind beside the lab's (webui.add_relay_scan)."""
    return wb.add_relay_scan(env["app"].state.store)


@pytest.mark.parametrize("width", [1280, 900])
def test_relay_page_in_chromium(env, relay_scan, width):
    from selenium.webdriver.common.by import By

    RELAY_DC, RELAY_LONG = wb.RELAY_DC, wb.RELAY_LONG
    d, url = env["driver"], env["url"]
    css = lambda sel: d.find_element(By.CSS_SELECTOR, sel)  # noqa: E731
    log_in(d, url)
    d.set_window_size(width, 1000)
    try:
        d.get(f"{url}/?scan={relay_scan}&lang=en")
        css("#nav-relay").click()
        wait_for(lambda: d.current_url.startswith(url + "/relay"), what="relay page")
        d.get(f"{url}/relay?scan={relay_scan}")
        rows = d.find_elements(By.CSS_SELECTOR, "#relay tr.relay-row")
        assert [r.find_element(By.CSS_SELECTOR, ".relay-endpoint").text for r in rows][:3] == \
            [f"smb://{RELAY_DC}", f"http://{RELAY_DC}:80/", f"https://{RELAY_DC}:443/certsrv/"]
        names = [e.text for e in d.find_elements(By.CSS_SELECTOR, "td.relay-name")]
        assert wb.XSS in names and wb.LONG_NAME in names  # shown whole, as text
        no_alert(d)
        assert d.execute_script("return document.querySelectorAll('main script, main img').length") == 0
        right, scroll, viewport = d.execute_script(WIDTHS, "#relay")
        assert right <= viewport and scroll <= viewport, (right, scroll, viewport)
        cell = next(e for e in d.find_elements(By.CSS_SELECTOR, "td.relay-name") if e.text == wb.LONG_NAME)
        assert cell.size["height"] > 2 * 20  # it wrapped onto several lines
        wb.shot(d, f"14-relay-{width}")
        if width == 1280:
            css("#relay-download").click()
            got = env["downloads"] / f"relay-targets-{relay_scan}.txt"
            wait_for(lambda: got.exists() and got.stat().st_size > 0, what="relay list download")
            from smbsentry.report.scans import relay_targets

            assert got.read_bytes() == relay_targets(env["app"].state.store, relay_scan).encode("utf-8")
            d.get(f"{url}/hosts/{relay_scan}/{RELAY_LONG}")
            assert css("#relay tr.relay-row .relay-endpoint").text == f"smb://{RELAY_LONG}"
            right, scroll, viewport = d.execute_script(WIDTHS, "#relay")
            assert right <= viewport and scroll <= viewport, (right, scroll, viewport)
    finally:
        d.set_window_size(1280, 1000)
