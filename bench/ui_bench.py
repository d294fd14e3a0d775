"""ui: the web UI in Debian's Chromium, with `USERS` simulated users keeping a live tab open meanwhile.

The stack: `tfd-learn` (which has learned `EVENTS` events and checkpointed), `tfd-predict`, `coelho ui` pointed at
them, and a bare NiceGUI page (`ui_hello.py`: one label, an Echo button) as the baseline page. `USERS` simulated
users each load /tfd/incremental and hold its NiceGUI websocket (python-socketio, no browser): the server runs
their tabs' timers, which poll the status (shared by all tabs) and push updates to every one of them.

- `load_p50_ms`, `load_p99_ms`: navigation start → the first animation frame in which /tfd/incremental shows its
  live model card (text `live model, seq`, which needs the websocket and the predict function's /status), over
  `ui_loads` loads in a warm Chromium; `hello_*`: the same for the baseline page's label; `fcp_*` is the first
  contentful paint of the same loads.
- `predict_p50_ms`: a click on Predict → the result's line changing in the DOM, timed in the page (browser →
  websocket → UI → tfd-predict → UI → websocket → DOM); `direct_p50_ms`: the same predictions POSTed straight to
  tfd-predict back to back over one keep-alive connection; `ratio = predict_p50_ms / direct_p50_ms`, target
  <= 1.5. `paced_direct_p50_ms`: the same POSTs as far apart as the clicks (`paced_ratio`). Rounds alternate
  direct, UI, paced direct and the baseline page's Echo button; each side keeps its best round's median.
- `parts_p50_ms`: each click split (see CLICK and PARTS) into the browser's share, the websocket and UI server's
  share, and inside the latter the UI's handler and its call to tfd-predict (timings the result line carries);
  `hello_click_p50_ms`: the same round trip through the bare page's Echo button, the floor of any NiceGUI click.
- `ui_cpu_users`, `ui_cpu_alone`: the UI process's CPU share with the users' tabs open and without them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
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

import aiohttp
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
IDLE_S = 5.0  # seconds over which the UI process's CPU use is measured

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

#: A click on Predict until the result line changes, timed in the page (`performance.now()`, ms): when the click's
#: event frame goes into the websocket and when the frame with the result comes out of it (engine.io's
#: `packetCreate` and `packet`), the DOM change, the next animation frame; and the UI's timings of its handler.
CLICK = """const marker = arguments[0], done = arguments[arguments.length - 1];
const meta = document.querySelector('[data-testid="result-meta"]');
const engine = window.socket.io.engine;
const before = meta.textContent, t = {click: performance.now()};
const sent = (packet) => {
  if (t.sent === undefined && String(packet.data).includes('"event"')) t.sent = performance.now();
};
const received = (packet) => {
  if (t.received === undefined && String(packet.data).includes(marker)) t.received = performance.now();
};
engine.on('packetCreate', sent);
engine.on('packet', received);
const observer = new MutationObserver(() => {
  if (meta.textContent === before) return;
  t.dom = performance.now();
  observer.disconnect();
  engine.off('packetCreate', sent);
  engine.off('packet', received);
  requestAnimationFrame(() => {
    t.frame = performance.now();
    done({...t, line: meta.textContent, call: meta.dataset.callMs, handler: meta.dataset.handlerMs});
  });
});
observer.observe(meta, {subtree: true, childList: true, characterData: true});
document.querySelector('[data-testid="predict"]').click();"""

#: The parts of a click's round trip, each from two of CLICK's timestamps (ms); they add up to `round_trip`.
PARTS = {
    "browser_out": ("click", "sent"),  # the click's handlers → the event frame into the websocket
    "server": ("sent", "received"),  # websocket out, the UI server, websocket back (loopback)
    "browser_in": ("received", "dom"),  # socket.io decoding, NiceGUI's update, Vue's patch of the DOM
}


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
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await asyncio.gather(*(self._open(http) for _ in range(self.count)))

    async def _open(self, http: aiohttp.ClientSession) -> None:
        async with http.get(self.url + PAGE) as page:
            text, status = await page.text(), page.status
        client_id = re.search(r"""["']client_id["']:\s*["']([0-9a-f-]+)["']""", text)
        if client_id is None:
            raise RuntimeError(f"no NiceGUI client id in the page {PAGE} (HTTP {status})")
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


def _open(browser: webdriver.Chrome, url: str) -> webdriver.Chrome:
    """Load `url` until its meaningful text shows, then click twice untimed (the page's first clicks warm it up)."""
    browser.get(url)
    WebDriverWait(browser, 60, poll_frequency=0.05).until(lambda b: b.execute_script("return window.__meaningful"))
    for _ in range(2):
        browser.execute_async_script(CLICK, "")
    return browser


def _clicks(browser: webdriver.Chrome, count: int, marker: str = "Prediction ") -> list[dict[str, float]]:
    """`count` clicks on the page's Predict (or Echo) button, each split into its parts (ms, see CLICK and PARTS);
    `marker` starts the result line that each click sets."""
    clicks = []
    for _ in range(count):
        seen = browser.execute_async_script(CLICK, marker)
        if not seen["line"].startswith(marker):
            raise RuntimeError(f"the page did not answer the click: {seen['line']!r}")
        click = {part: seen[end] - seen[start] for part, (start, end) in PARTS.items()}
        click |= {"round_trip": seen["dom"] - seen["click"], "to_frame": seen["frame"] - seen["dom"],
                  "handler": float(seen["handler"]), "ui_http": float(seen["call"])}
        click["nicegui"] = click["server"] - click["handler"]  # socket.io in and out, NiceGUI's dispatch and outbox
        click["handler_own"] = click["handler"] - click["ui_http"]  # the handler's work besides its HTTP call
        click["at"] = seen["click"]
        clicks.append(click)
    return clicks


def _summary(samples: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(samples), "p99": percentile(samples, 99)}


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_share(pid: int, seconds: float) -> float:
    """Share of one core process `pid` uses over the next `seconds`."""
    before, began = _cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (_cpu_seconds(pid) - before) / (time.perf_counter() - began)


def _medians(clicks: list[dict[str, float]]) -> dict[str, float]:
    """The median of each part over `clicks`."""
    return {part: statistics.median(click[part] for click in clicks) for part in clicks[0] if part != "at"}


def _pace(clicks: list[dict[str, float]]) -> float:
    """The median time between consecutive clicks (s)."""
    return statistics.median(later["at"] - earlier["at"] for earlier, later in itertools.pairwise(clicks)) / 1000


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
    assert ui.process is not None
    ui_url, hello_url = f"http://127.0.0.1:{ui.port}", f"http://127.0.0.1:{hello.port}"
    direct = [predict_request("tfd", event) for event in events[EVENTS:]]
    rounds: dict[str, list[Any]] = {"ui": [], "direct": [], "paced": [], "hello": []}
    with chromium() as browser:
        with SimulatedUsers(ui_url, USERS) as users:
            log.info("ui: %d simulated users on %s; %d page loads each", USERS, PAGE, plan.ui_loads)
            loads, fcp = _loads(browser, ui_url + PAGE, plan.ui_loads)
            hello_loads, hello_fcp = _loads(browser, hello_url, plan.ui_loads)
            for _ in range(plan.ui_rounds):
                _, latencies = post(predict.port, direct, timed_from=2)
                rounds["direct"].append([seconds * 1000 for seconds in latencies])
                rounds["ui"].append(_clicks(_open(browser, ui_url + PAGE), plan.ui_predictions))
                _, latencies = post(predict.port, direct, timed_from=2, gap=_pace(rounds["ui"][-1]))
                rounds["paced"].append([seconds * 1000 for seconds in latencies])
                rounds["hello"].append(_clicks(_open(browser, hello_url), plan.ui_predictions, "Echo "))
            _open(browser, ui_url + PAGE)
            cpu_users = _cpu_share(ui.process.pid, IDLE_S)  # the users' tabs and the browser's, nobody clicking
            updates = users.updates
        alone = _clicks(browser, plan.ui_predictions)  # the browser's tab only
        cpu_alone = _cpu_share(ui.process.pid, IDLE_S)
    best, floor = (min(rounds[side], key=lambda clicks: statistics.median(click["round_trip"] for click in clicks))
                   for side in ("ui", "hello"))
    page, baseline = _summary(loads), _summary(hello_loads)
    predicted = _summary([click["round_trip"] for click in best])
    straight, paced = (_summary(min(rounds[side], key=statistics.median)) for side in ("direct", "paced"))
    parts = _medians(best)
    return {
        "users": USERS, "user_updates": updates, "page": PAGE, "loads": plan.ui_loads,
        "load_p50_ms": page["p50"], "load_p99_ms": page["p99"], "fcp_p50_ms": statistics.median(fcp),
        "hello_load_p50_ms": baseline["p50"], "hello_load_p99_ms": baseline["p99"],
        "hello_fcp_p50_ms": statistics.median(hello_fcp), "load_ratio": page["p50"] / baseline["p50"],
        "predictions": plan.ui_predictions, "predict_p50_ms": predicted["p50"], "predict_p99_ms": predicted["p99"],
        "direct_p50_ms": straight["p50"], "direct_p99_ms": straight["p99"],
        "ratio": predicted["p50"] / straight["p50"],
        "paced_direct_p50_ms": paced["p50"], "paced_ratio": predicted["p50"] / paced["p50"],
        "pace_ms": statistics.median(_pace(clicks) * 1000 for clicks in rounds["ui"]),
        "paced_call_ratio": parts["ui_http"] / paced["p50"],
        "parts_p50_ms": parts, "ui_http_p50_ms": parts["ui_http"], "handler_p50_ms": parts["handler"],
        "server_p50_ms": parts["server"], "server_ratio": parts["server"] / straight["p50"],
        "handler_ratio": parts["handler"] / straight["p50"], "ui_http_ratio": parts["ui_http"] / straight["p50"],
        "hello_click_p50_ms": statistics.median(click["round_trip"] for click in floor),
        "hello_parts_p50_ms": _medians(floor),
        "alone_predict_p50_ms": statistics.median(click["round_trip"] for click in alone),
        "alone_parts_p50_ms": _medians(alone), "ui_cpu_users": cpu_users, "ui_cpu_alone": cpu_alone,
        "samples": {"load_ms": loads, "hello_load_ms": hello_loads, "fcp_ms": fcp, "hello_fcp_ms": hello_fcp},
        "rounds": {**{side: [statistics.median(samples) for samples in rounds[side]] for side in ("direct", "paced")},
                   **{side: [_medians(clicks) for clicks in rounds[side]] for side in ("ui", "hello")}},
    }
