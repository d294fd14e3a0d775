"""The UI in a real browser: Debian's Chromium driven by Selenium, against `coelho ui` and the real functions.

Every page loads with no SEVERE console message, a typed form goes to the function and back, a query fills
the grid, the map, the gauge and the charts draw on their canvases, a trained run's diagnostics figure draws,
and no request leaves the machine (map tiles are off). The batch functions are up, with one finished TFD
training (`trained`). A screenshot of every page goes to `screenshots/` (git-ignored) on each run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from support import ROOT, wait_for
from support.servers import free_port

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "screenshots"
WAIT_S = 30

#: Every page, and a text that shows once it has its data from the functions (batch: the training's state).
PAGES = {"/": "Events learned"} | {
    f"/{key}/{tab}": ready
    for key in ("tfd", "eta", "ecci")
    for tab, ready in (("incremental", "live model, seq"), ("batch", " %)"), ("sql", "rows in"))
}


def chromium_options() -> webdriver.ChromeOptions:
    """Headless Debian Chromium: no sandbox (root in CI), nothing fetched in the background."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-default-apps", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """One Chromium for the module (Debian's; `make test` installs it with chromium-driver)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: `make system` installs chromium chromium-driver")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=chromium_options())
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def ui_url(stack, mlflow_up, batch, trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`coelho ui` as its own process, pointed at the stack's functions and the batch functions."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "COELHO_UI_PASSWORD", "PORT")}
    env |= stack.ui_env() | {"COELHO_FUNCTION_URLS": stack.urls(**batch.urls())}
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "coelho.cli", "ui", "--host", "127.0.0.1", "--port",
                                    str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return requests.get(url, timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=120, what="coelho ui")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def screenshots() -> None:
    """A fresh screenshots folder per run."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir()


def visit(browser: webdriver.Chrome, url: str, ready: str) -> None:
    """Open `url` and wait until the page shows `ready`."""
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(lambda b: ready in b.find_element(By.TAG_NAME, "body").text)


def severe(browser: webdriver.Chrome) -> list[dict]:
    """SEVERE console messages since the last call."""
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def by_testid(browser: webdriver.Chrome, name: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def shoot(browser: webdriver.Chrome, name: str) -> None:
    """A screenshot of the top of the page."""
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def painted(browser: webdriver.Chrome, canvas: WebElement) -> int:
    """How many pixels of a canvas are not transparent."""
    return int(browser.execute_script(
        "const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;", canvas))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_without_console_errors(browser, ui_url, path) -> None:
    severe(browser)
    visit(browser, ui_url + path, PAGES[path])
    shoot(browser, path.strip("/").replace("/", "-") or "home")
    assert severe(browser) == []


def test_a_typed_form_goes_to_the_function_and_back(browser, ui_url) -> None:
    visit(browser, ui_url + "/tfd/incremental", "live model, seq")
    timestamp = by_testid(browser, "field-timestamp")  # the <input> itself
    timestamp.send_keys(Keys.CONTROL, "a")
    timestamp.send_keys("yesterday")
    by_testid(browser, "predict").click()
    field = timestamp.find_element(By.XPATH, "ancestor::label")
    WebDriverWait(browser, WAIT_S).until(lambda _: "must be an ISO-8601 timestamp string" in field.text)
    timestamp.send_keys(Keys.CONTROL, "a")
    timestamp.send_keys("2026-03-02T23:30:00+00:00")
    amount = by_testid(browser, "field-amount")
    amount.send_keys(Keys.CONTROL, "a")
    amount.send_keys("4999.5")
    by_testid(browser, "predict").click()
    WebDriverWait(browser, WAIT_S).until(lambda b: "Prediction 1 · live model" in by_testid(b, "result-meta").text)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Legitimate (" in body or "Fraud (" in body
    gauge = by_testid(browser, "fraud-gauge").find_element(By.TAG_NAME, "canvas")
    assert painted(browser, gauge) > 1000
    shoot(browser, "tfd-prediction")
    assert severe(browser) == []


def test_a_query_fills_the_grid(browser, ui_url) -> None:
    visit(browser, ui_url + "/eta/sql", "100 rows in")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".ag-center-cols-container .ag-row")) > 10
    browser.find_element(By.XPATH, "//button[.//span[text()='Row Count']]").click()
    by_testid(browser, "run").click()
    WebDriverWait(browser, WAIT_S).until(lambda b: "1 rows in" in by_testid(b, "sql-summary").text)
    cells = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, ".ag-center-cols-container .ag-cell")]
    assert cells == ["1500"]
    assert browser.find_element(By.CSS_SELECTOR, ".ag-header-cell-text").text == "row_count"
    shoot(browser, "eta-sql-query")
    assert severe(browser) == []


def test_the_map_and_the_charts_draw_and_nothing_leaves_the_machine(browser, ui_url) -> None:
    visit(browser, ui_url + "/eta/incremental", "History of MLflow run")
    by_testid(browser, "predict").click()
    WebDriverWait(browser, WAIT_S).until(lambda b: "Prediction 1 · live model" in by_testid(b, "result-meta").text)
    route = by_testid(browser, "trip-map").find_element(By.CSS_SELECTOR, "canvas")
    WebDriverWait(browser, WAIT_S).until(lambda b: painted(b, route) > 100)  # markers and the line, no tiles
    chart = by_testid(browser, "series-chart").find_element(By.TAG_NAME, "canvas")
    assert painted(browser, chart) > 1000
    shoot(browser, "eta-prediction")
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(name.startswith(ui_url) for name in resources), resources
    assert severe(browser) == []


def test_a_cluster_and_its_charts(browser, ui_url) -> None:
    visit(browser, ui_url + "/ecci/incremental", "live model, seq")
    by_testid(browser, "predict").click()
    WebDriverWait(browser, WAIT_S).until(lambda b: "Prediction 1 · live model" in by_testid(b, "result-meta").text)
    assert "Cluster " in browser.find_element(By.TAG_NAME, "body").text
    for name in ("cluster-sizes", "cluster-feature-chart"):
        canvas = by_testid(browser, name).find_element(By.TAG_NAME, "canvas")
        WebDriverWait(browser, WAIT_S).until(lambda b, canvas=canvas: painted(b, canvas) > 1000)
    shoot(browser, "ecci-prediction")
    assert severe(browser) == []


def test_the_batch_tab_shows_a_trained_run_and_draws_its_figure(browser, ui_url, trained) -> None:
    visit(browser, ui_url + "/tfd/batch", "finished (100 %)")
    note = by_testid(browser, "comparison-note")
    WebDriverWait(browser, WAIT_S).until(lambda _: "test rows. Online: coelho-tfd" in note.text)
    assert trained["run_id"][:12] in by_testid(browser, "runs").text and "★" in by_testid(browser, "runs").text
    plot = browser.find_element(By.CSS_SELECTOR, ".js-plotly-plot")
    WebDriverWait(browser, WAIT_S).until(lambda _: plot.find_elements(By.CSS_SELECTOR, ".main-svg .trace"))
    shoot(browser, "tfd-batch")
    assert severe(browser) == []
