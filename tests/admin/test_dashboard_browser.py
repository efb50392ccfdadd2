"""The dashboard in a real browser: a real daemon on a real Git repository, headless Chromium.

One daemon (local runtime, real worker processes) and one browser for the
module. The daemon runs with RECONCILER_UI_TOKEN set; the browser sends the
token on every request (DevTools' extra headers), as a reverse proxy or a
browser's Basic-auth prompt would. Screenshots of each page go to
tests/artifacts/ (git-ignored).

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them); the
tests are skipped, saying so, only where neither can be found.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from gitops_harness import (  # noqa: E402
    MODEL_DIGEST,
    WORDCOUNT,
    DaemonProcess,
    GitRepo,
    http,
)

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TOKEN = "ui-token-for-the-browser-tests"
EVIL = "<script>document.title='pwned'</script> & <b>bold</b>"
COMMIT_WAIT = 10.0

if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
    pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver;"
                " .ci/run does it)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def document(kind: str, name: str, spec: str, description: str = "") -> str:
    meta = f"{{name: {name}" + (f", description: {json.dumps(description)}" if description
                                else "") + "}"
    return f"apiVersion: reconciler/v1\nkind: {kind}\nmetadata: {meta}\nspec: {spec}\n---\n"


def algorithm(name: str) -> str:
    return f"""apiVersion: reconciler/v1
kind: Algorithm
metadata: {{name: {name}}}
spec:
  owner: erin
  processor: cpu
  resources: {{cpu: 100m, memory: 64Mi}}
  image: registry.example/erin/{name}
  entrypoint: wc:apply
  versions:
    - commit: 7b09e68d7ce6b07a4c974c3bdea844e029378522
      version: 0.1.0
      visibility: public
      compiledAt: "2026-07-04T18:00:00Z"
      model: {{path: "data://erin/wc/stop.txt", digest: "{MODEL_DIGEST}"}}
"""


def write_config(repo: GitRepo, zed_replicas: int = 2) -> None:
    repo.write("accounts.yaml", document("Account", "erin", "{type: user}")
               + document("Account", "zed", "{type: user}"))
    repo.write("algorithms/wc.yaml", algorithm("wc"))
    repo.write("algorithms/wc2.yaml", algorithm("wc2"))
    repo.write("reservations/all.yaml",
               document("Reservation", "erin-wc", "{caller: erin, algorithm: erin/wc, "
                        "versionType: latest-public, replicas: 1}", "Erin's own pool")
               + document("Reservation", "zed-wc", "{caller: zed, algorithm: erin/wc, "
                          f"versionType: latest-public, replicas: {zed_replicas}}}", EVIL)
               + document("Reservation", "zed-wc2", "{caller: zed, algorithm: erin/wc2/0.1.0, "
                          "versionType: semantic, replicas: 1}"))
    repo.write("settings.yaml", document(
        "Settings", "settings",
        "{local: {nodes: [{name: local-cpu, processor: cpu, cpu: '2', memory: 2Gi, pods: 8}]}}"))
    repo.write("src/wc.py", WORDCOUNT)
    (repo.work / "data" / "erin" / "wc").mkdir(parents=True, exist_ok=True)
    (repo.work / "data" / "erin" / "wc" / "stop.txt").write_bytes(b"the\na\nof\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    repo = GitRepo(tmp_path_factory.mktemp("origin"))
    write_config(repo)
    repo.commit("erin and zed reserve warm replicas")
    return repo


@pytest.fixture(scope="module")
def daemon(repo: GitRepo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    process = DaemonProcess(["--repo", str(repo.remote), "--interval", "1s"],
                            tmp_path_factory.mktemp("daemon") / "state",
                            env={"RECONCILER_UI_TOKEN": TOKEN})
    try:
        process.started()
        wait_ready(process, 4)
        yield process
    finally:
        process.stop()


def authed(daemon: DaemonProcess, path: str) -> tuple[int, bytes]:
    return http(daemon.url + path, headers={"Authorization": f"Bearer {TOKEN}"})


def wait_ready(daemon: DaemonProcess, replicas: int, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        code, body = authed(daemon, "/status")
        if code == 200:
            last = json.loads(body)["pools"]
            if last["desired"] == replicas and last["ready"] == replicas:
                return
        time.sleep(0.2)
    raise AssertionError(f"pools not ready: {last}\n{daemon.output()[-3000:]}")


@pytest.fixture(scope="module")
def browser(daemon: DaemonProcess) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="reconciler-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        driver.set_page_load_timeout(15)
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                               {"headers": {"Authorization": f"Bearer {TOKEN}"}})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: webdriver.Chrome, condition: Any, timeout: float = 10.0) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def table(driver: webdriver.Chrome, name: str) -> list[list[str]]:
    """The cells' text of a table, read in one script call (the page's script replaces
    rows every refresh, so element references would go stale)."""
    cells: list[list[str]] = driver.execute_script(
        "return [...document.querySelectorAll(`tbody[data-table='${arguments[0]}'] tr`)]"
        ".map(tr => [...tr.cells].map(td => td.textContent.trim()))", name)
    return cells


def rows(driver: webdriver.Chrome) -> list[dict[str, str]]:
    found = []
    for cells in table(driver, "reservations"):
        found.append({"account": cells[0], "algorithm": cells[1], "version": cells[2],
                      "reserved": cells[3], "ready": cells[4], "source": cells[7],
                      "description": cells[8]})
    return found


def shot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"dashboard-{name}.png"))


def test_reservations_table_lists_every_reservation_with_its_ready_count(
        browser: webdriver.Chrome, daemon: DaemonProcess) -> None:
    browser.get(daemon.url + "/reservations")

    def complete(driver: webdriver.Chrome) -> list[dict[str, str]] | None:
        found = rows(driver)
        return found if len(found) == 3 and all("/" in r["ready"] for r in found) else None

    found = {(r["account"], r["algorithm"]): r for r in wait(browser, complete)}
    assert set(found) == {("erin", "erin/wc"), ("zed", "erin/wc"), ("zed", "erin/wc2")}
    assert found[("erin", "erin/wc")]["ready"] == "1/1"
    assert found[("zed", "erin/wc")]["ready"] == "2/2"
    assert found[("zed", "erin/wc2")]["ready"] == "1/1"
    assert found[("zed", "erin/wc2")]["version"] == "semantic → 0.1.0"
    assert found[("zed", "erin/wc")]["source"].startswith("reservations/all.yaml:")
    # the description is shown as text, never run or parsed as markup
    assert found[("zed", "erin/wc")]["description"] == EVIL
    assert browser.title != "pwned"
    assert not browser.find_elements(By.CSS_SELECTOR, "main script, main b")
    shot(browser, "reservations")


def test_filters_by_account_and_algorithm(browser: webdriver.Chrome,
                                          daemon: DaemonProcess) -> None:
    browser.get(daemon.url + "/reservations")
    wait(browser, lambda d: len(rows(d)) == 3)
    Select(browser.find_element(By.ID, "filter-account")).select_by_value("zed")
    wait(browser, lambda d: {r["account"] for r in rows(d)} == {"zed"} and len(rows(d)) == 2)
    assert "account=zed" in browser.current_url
    Select(browser.find_element(By.ID, "filter-algorithm")).select_by_value("erin/wc2")
    wait(browser, lambda d: [(r["account"], r["algorithm"]) for r in rows(d)]
         == [("zed", "erin/wc2")])
    browser.get(daemon.url + "/reservations?algorithm=erin/wc")  # without the script too
    assert {r["account"] for r in rows(browser)} == {"erin", "zed"}
    assert all(r["algorithm"] == "erin/wc" for r in rows(browser))


def test_capacity_and_last_plan_pages(browser: webdriver.Chrome, daemon: DaemonProcess) -> None:
    browser.get(daemon.url + "/capacity")
    nodes = wait(browser, lambda d: table(d, "nodes"))  # the page refreshes itself
    assert [cells[0] for cells in nodes] == ["local-cpu"]
    assert nodes[0][5] == "4 of 8"  # pods placed of allocatable
    assert browser.find_elements(By.CSS_SELECTOR, "svg.bar rect.fill")
    shot(browser, "capacity")
    browser.get(daemon.url + "/plan")
    verdict = browser.find_element(By.CSS_SELECTOR, ".verdict").text
    assert verdict.startswith("Applyable:")
    summaries = [s.text for s in browser.find_elements(By.TAG_NAME, "summary")]
    assert any(s.startswith("zed: pools 0 → 2") for s in summaries), summaries
    wait(browser, lambda d: table(d, "events"))
    shot(browser, "plan")


def test_a_new_commit_shows_within_seconds(browser: webdriver.Chrome, daemon: DaemonProcess,
                                           repo: GitRepo) -> None:
    browser.get(daemon.url + "/")
    shot(browser, "overview")
    write_config(repo, zed_replicas=1)
    head = repo.commit("zed keeps one replica")
    wait(browser, lambda d: d.find_element(By.ID, "last-applied").text == head[:12],
         timeout=COMMIT_WAIT)
    history = [(cells[2], cells[3]) for cells in table(browser, "history")]
    assert (head[:12], "applied") in history  # later polls of it are "unchanged"


def test_no_request_leaves_the_origin_and_nothing_is_blocked(browser: webdriver.Chrome,
                                                            daemon: DaemonProcess) -> None:
    for path in ("/", "/reservations", "/capacity", "/plan"):
        browser.get(daemon.url + path)
        wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, '[data-field="refreshed"]').text)
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params") or {}
        # requests made by our pages (the browser's own start page asks for chrome:// URLs)
        if message["method"] == "Network.requestWillBeSent" and \
                str(params.get("documentURL", "")).startswith(daemon.url + "/"):
            urls.append(params["request"]["url"])
    assert urls and any("/api/" in u for u in urls) and any("/static/app.js" in u for u in urls)
    outside = [u for u in urls if not u.startswith(daemon.url + "/")]
    assert not outside, outside
    problems = [e["message"] for e in browser.get_log("browser")
                if "Content Security Policy" in e["message"] or e["level"] == "SEVERE"]
    assert not problems, problems


def test_routes_are_read_only_token_guarded_and_strict(daemon: DaemonProcess) -> None:
    assert http(daemon.url + "/healthz")[0] == 200  # probes stay open
    for path in ("/", "/reservations", "/api/overview", "/status", "/metrics"):
        assert http(daemon.url + path)[0] == 401, path
        assert http(daemon.url + path, headers={"Authorization": "Bearer nope"})[0] == 401
    assert authed(daemon, "/")[0] == 200
    assert http(daemon.url + "/", headers={"Authorization": "Basic eDp1aS10b2tlbi1mb3ItdGhlLW"
                                           "Jyb3dzZXItdGVzdHM="})[0] == 200  # x:TOKEN
    assert http(daemon.url + "/", data=b"x", headers={"Authorization": f"Bearer {TOKEN}"}
                )[0] == 405
    import urllib.request

    request = urllib.request.Request(daemon.url + "/reservations",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        csp = response.headers["Content-Security-Policy"]
        body = response.read().decode()
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert "&lt;script&gt;" in body and EVIL not in body
    assert "<script>" not in body.replace('<script src="/static/app.js" defer></script>', "")
    assert TOKEN not in daemon.output()
