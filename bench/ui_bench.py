"""ui: the web UI in Debian's Chromium, with `USERS` simulated users keeping a live tab open meanwhile.

The stack: `tfd-learn` (which has learned `EVENTS` events and checkpointed), `tfd-predict`, `coelho ui` pointed at
them, and a bare NiceGUI page (`ui_hello.py`, one label) as the baseline page. `USERS` simulated users each load
/tfd/incremental and hold its NiceGUI websocket (python-socketio, no browser): the server runs their tabs'
timers, which poll the status (shared by all tabs) and push updates to every one of them, for the whole section.

- `load_p50_ms`, `load_p99_ms`: navigation start → the first animation frame in which /tfd/incremental shows its
  live model card (text `live model, seq`, which needs the websocket and the predict function's /status), over
  `ui_loads` loads in a warm Chromium; `hello_*`: the same for the baseline page's label; `fcp_*` is the first
  contentful paint of the same loads.
- `predict_p50_ms`: a click on Predict → the result's line changing in the DOM, timed in the page (browser →
  websocket → UI → tfd-predict → UI → websocket → DOM); `direct_p50_ms`: the same predictions POSTed straight to
  tfd-predict over one keep-alive connection (what `curl` or any client pays); `ratio = predict_p50_ms /
  direct_p50_ms`, target <= 1.5. Rounds alternate the two; each keeps its best round's median.
  `ui_http_p50_ms` is the UI's own call to tfd-predict within those clicks (what the result line says).
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import socketio
from measure import Plan, percentile, post
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
from servers import Processes
from workload import cloudevent_request, predict_request, stream

__all__ = ["ui_bench"]

log = logging.getLogger("bench")

USERS = 20
EVENTS = 2_000
PAGE = "/tfd/incremental"
LIVE_TEXT = "live model, seq"
HELLO = Path(__file__).with_name("ui_hello.py")

#: Installed before any page script: records when the page first shows its meaningful text (once per frame).
PAINT_PROBE = """(() => {
  const wanted = %s;
  const tick = () => {
    const text = document.body ? document.body.textContent : "";
    if (wanted.some((w) => text.includes(w))) { window.__meaningful = performance.now(); return; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();"""

#: A click on Predict until the result line changes, timed in the page.
CLICK = """const done = arguments[arguments.length - 1];
const meta = document.querySelector('[data-testid="result-meta"]');
const before = meta.textContent, began = performance.now();
const observer = new MutationObserver(() => {
  if (meta.textContent !== before) { observer.disconnect(); done([performance.now() - began, meta.textContent]); }
});
observer.observe(meta, {subtree: true, childList: true, characterData: true});
document.querySelector('[data-testid="predict"]').click();"""


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium (no sandbox, nothing fetched in the background)."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("headless=new", "no-sandbox", "disable-dev-shm-usage", "disable-gpu", "window-size=1400,1000",
                 "disable-background-networking", "disable-component-update", "disable-sync", "no-first-run"):
        options.add_argument(f"--{flag}")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.set_script_timeout(60)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                               {"source": PAINT_PROBE % f'["{LIVE_TEXT}", "hello baseline page"]'})
        yield driver
    finally:
        driver.quit()


class SimulatedUsers:
    """`count` tabs without a browser: each loads the page and holds its NiceGUI websocket (its timers run)."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.updates = 0
        self.clients: list[socketio.AsyncClient] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="simulated-users", daemon=True)

    def __enter__(self) -> SimulatedUsers:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._open_all(), self.loop).result(timeout=120)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._close_all(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _open_all(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as http:
            await asyncio.gather(*(self._open(http) for _ in range(self.count)))

    async def _open(self, http: httpx.AsyncClient) -> None:
        page = await http.get(PAGE)
        client_id = re.search(r"""["']client_id["']:\s*["']([0-9a-f-]+)["']""", page.text)
        if client_id is None:
            raise RuntimeError(f"no NiceGUI client id in the page {PAGE} (HTTP {page.status_code})")
        client = socketio.AsyncClient(reconnection=False)
        client.on("*", self._message)
        query = (f"client_id={client_id.group(1)}&tab_id={uuid.uuid4()}&document_id={uuid.uuid4()}"
                 "&implicit_handshake=true&next_message_id=0")
        await client.connect(f"{self.url}?{query}", socketio_path="/_nicegui_ws/socket.io", transports=["websocket"])
        self.clients.append(client)

    async def _message(self, event: str, *_: Any) -> None:
        if event == "update":
            self.updates += 1

    async def _close_all(self) -> None:
        await asyncio.gather(*(client.disconnect() for client in self.clients))


def _loads(browser: webdriver.Chrome, url: str, count: int) -> tuple[list[float], list[float]]:
    """Time to the meaningful paint and to the first contentful paint of `count` fresh navigations (ms)."""
    meaningful, contentful = [], []
    for _ in range(count + 1):  # the first load warms the cache and is not counted
        browser.get("about:blank")
        browser.get(url)
        when = WebDriverWait(browser, 60, poll_frequency=0.05).until(
            lambda b: b.execute_script("return window.__meaningful"))
        fcp = browser.execute_script(
            "return performance.getEntriesByName('first-contentful-paint')[0]?.startTime")
        meaningful.append(float(when))
        contentful.append(float(fcp or when))
    return meaningful[1:], contentful[1:]


def _clicks(browser: webdriver.Chrome, count: int) -> tuple[list[float], list[float]]:
    """`count` Predict clicks: the round trips seen in the page, and the UI's own call to the function (ms)."""
    round_trips, calls = [], []
    for _ in range(count):
        elapsed, line = browser.execute_async_script(CLICK)
        if "live model" not in line:
            raise RuntimeError(f"the UI did not predict: {line!r}")
        round_trips.append(float(elapsed))
        calls.append(float(re.search(r"([0-9.]+) ms$", line).group(1)))  # type: ignore[union-attr]
    return round_trips, calls


def _summary(samples: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(samples), "p99": percentile(samples, 99)}


def ui_bench(processes: Processes, plan: Plan, seed: int) -> dict[str, Any]:
    """Page loads and prediction round trips through the UI, next to their baselines, with simulated users."""
    events = stream("tfd", EVENTS + plan.ui_predictions + 2, seed)
    learn = processes.launch("tfd-learn", COELHO_CHECKPOINT_EVERY="500")
    predict = processes.launch("tfd-predict")
    for server in (learn, predict):
        server.wait_ready()
    post(learn.port, [cloudevent_request("tfd", event) for event in events[:EVENTS]])
    functions = f"tfd-learn=http://127.0.0.1:{learn.port},tfd-predict=http://127.0.0.1:{predict.port}"
    env = processes.env() | {"COELHO_FUNCTION_URLS": functions, "COELHO_UI_TILE_URL": "off"}
    ui = processes.launch_command("ui", lambda port: [sys.executable, "-m", "coelho.cli", "ui", "--host", "127.0.0.1",
                                                      "--port", str(port)], env)
    hello = processes.launch_command("ui-hello", lambda port: [sys.executable, str(HELLO), str(port)], env)
    log.info("ui ready on port %d after %.1f s; baseline page after %.1f s", ui.port, ui.wait_ready(120),
             hello.wait_ready(120))
    ui_url, hello_url = f"http://127.0.0.1:{ui.port}", f"http://127.0.0.1:{hello.port}"
    direct = [predict_request("tfd", event) for event in events[EVENTS:]]
    with chromium() as browser, SimulatedUsers(ui_url, USERS) as users:
        log.info("ui: %d simulated users on %s; %d page loads each", USERS, PAGE, plan.ui_loads)
        loads, fcp = _loads(browser, ui_url + PAGE, plan.ui_loads)
        hello_loads, hello_fcp = _loads(browser, hello_url, plan.ui_loads)
        browser.get(ui_url + PAGE)
        WebDriverWait(browser, 60).until(lambda b: b.execute_script("return window.__meaningful"))
        rounds: dict[str, list[list[float]]] = {"ui": [], "ui_http": [], "direct": []}
        for _ in range(plan.ui_rounds):
            _, latencies = post(predict.port, direct, timed_from=2)
            rounds["direct"].append([seconds * 1000 for seconds in latencies])
            round_trips, calls = _clicks(browser, plan.ui_predictions)
            rounds["ui"].append(round_trips)
            rounds["ui_http"].append(calls)
        time.sleep(2)  # one more status push to every user
        updates = users.updates
    best_ui = min(range(plan.ui_rounds), key=lambda i: statistics.median(rounds["ui"][i]))
    page, baseline = _summary(loads), _summary(hello_loads)
    predicted, straight = _summary(rounds["ui"][best_ui]), _summary(min(rounds["direct"], key=statistics.median))
    return {
        "users": USERS, "user_updates": updates, "page": PAGE, "loads": plan.ui_loads,
        "load_p50_ms": page["p50"], "load_p99_ms": page["p99"], "fcp_p50_ms": statistics.median(fcp),
        "hello_load_p50_ms": baseline["p50"], "hello_load_p99_ms": baseline["p99"],
        "hello_fcp_p50_ms": statistics.median(hello_fcp), "load_ratio": page["p50"] / baseline["p50"],
        "predictions": plan.ui_predictions, "predict_p50_ms": predicted["p50"], "predict_p99_ms": predicted["p99"],
        "ui_http_p50_ms": statistics.median(rounds["ui_http"][best_ui]),
        "direct_p50_ms": straight["p50"], "direct_p99_ms": straight["p99"],
        "ratio": predicted["p50"] / straight["p50"],
        "samples": {"load_ms": loads, "hello_load_ms": hello_loads, "fcp_ms": fcp, "hello_fcp_ms": hello_fcp},
        "rounds": {side: [statistics.median(samples) for samples in values] for side, values in rounds.items()},
    }
