"""`coelho up` (what `make up` runs): embedded Valkey, MLflow, the functions, the web UI, three producers, clean
stop; over HTTP with Prometheus (`make up PROMETHEUS=1`) scraping every process, over Kafka without."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from coelho.runtime.catalog import FUNCTIONS
from support import sample, wait_for

#: Functions `coelho up` serves (all but the benchmark baselines), on consecutive ports; MLflow on the next one.
SERVED = len([f for f in FUNCTIONS if f.role != "baseline"])

#: Per request: a function's first answer may load a model or replay its log while the whole platform
#: (a broker, twelve functions, MLflow, producers) starts on two cores. A hang still fails the test.
TIMEOUT_S = 60


def _free_block(size: int) -> int:
    for base in range(23100, 30000, 97):
        with socket.socket() as probe:
            if all(probe.connect_ex(("127.0.0.1", base + i)) != 0 for i in range(size)):
                return base
    raise RuntimeError("no free port block")


def _status(url: str) -> dict:
    return requests.get(url + "/status", timeout=TIMEOUT_S).json()


@pytest.mark.slow
@pytest.mark.parametrize("kafka", [False, True], ids=["http", "kafka"])
def test_up_serves_predictions_that_improve_then_stops_everything(tmp_path, kafka):
    prometheus = not kafka
    base = _free_block(SERVED + 7)  # functions, MLflow, the dispatcher's, producers' and Prometheus' metrics, the UI
    ui = base + SERVED + 6
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYTEST_CURRENT_TEST", "PORT")}
    env["COELHO_DATA_DIR"] = str(tmp_path / "state")
    up = subprocess.Popen(
        [sys.executable, "-m", "coelho.cli", "up", "--base-port", str(base), "--rate-scale", "15",
         "--ui-port", str(ui), *(["--kafka"] if kafka else ["--prometheus"])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    eta_learn, eta_predict = f"http://127.0.0.1:{base + 2}", f"http://127.0.0.1:{base + 3}"
    tfd_predict, ecci_predict = f"http://127.0.0.1:{base + 1}", f"http://127.0.0.1:{base + 5}"
    sql, delta_sink = f"http://127.0.0.1:{base + 6}", f"http://127.0.0.1:{base + 7}"
    train, tfd_batch_predict = f"http://127.0.0.1:{base + 8}", f"http://127.0.0.1:{base + 9}"
    try:
        banner = ""
        deadline = time.monotonic() + 90
        while "Stop with Ctrl-C" not in banner:
            line = up.stdout.readline()
            assert line or up.poll() is None, banner
            banner += line
            assert time.monotonic() < deadline, banner
        assert "curl -s -X POST" in banner and "eta-predict" in banner and "SELECT count(*) FROM data" in banner
        templates = requests.get(f"{sql}/templates?use_case=tfd", timeout=TIMEOUT_S)
        assert templates.status_code == 200 and templates.json()["templates"]
        assert requests.get(f"{train}/status?use_case=tfd", timeout=TIMEOUT_S).json()["state"] == "idle"
        no_model = requests.post(tfd_batch_predict + "/", json=sample("tfd"), timeout=TIMEOUT_S)
        assert no_model.status_code == 503 and "coelho-tfd-batch" in no_model.json()["error"]
        assert ("coelho dlq list" in banner) is kafka
        assert f"MLflow: http://127.0.0.1:{base + SERVED}" in banner
        assert requests.get(f"http://127.0.0.1:{base + SERVED}/health", timeout=TIMEOUT_S).ok
        if prometheus:  # every function and producer scraped, with the labels the rules use
            assert f"Prometheus: http://127.0.0.1:{base + SERVED + 5}" in banner

            def scraped() -> list[tuple[str, str]]:
                answer = requests.get(f"http://127.0.0.1:{base + SERVED + 5}/api/v1/query",
                                      params={"query": "up == 1"}, timeout=TIMEOUT_S).json()
                return sorted((r["metric"]["service"], r["metric"]["role"]) for r in answer["data"]["result"])

            targets = SERVED + 3  # and the three producers
            wait_for(lambda: len(scraped()) == targets, timeout=120, what=f"{targets} targets up in Prometheus")
            assert ("eta-learn", "learn") in scraped() and ("tfd-producer", "producer") in scraped()
            assert ("train", "train") in scraped() and ("tfd-batch-predict", "batch-predict") in scraped()
        assert f"Web UI: http://127.0.0.1:{ui}/" in banner
        page = requests.get(f"http://127.0.0.1:{ui}/eta/incremental", timeout=TIMEOUT_S)
        assert page.ok and "<title>COELHO RealTime</title>" in page.text

        def wait_events(url: str, count: int) -> dict:
            limit = time.monotonic() + 180  # eta is produced at ~3.4 events/s here
            while (status := _status(url))["events_applied"] < count:
                assert time.monotonic() < limit, status
                time.sleep(0.5)
            return status

        def predict_eta() -> dict:
            return requests.post(eta_predict + "/", json=sample("eta"), timeout=TIMEOUT_S).json()

        early = wait_events(eta_learn, 30)["metrics"]["RollingMAE"]
        answer = predict_eta()
        assert answer["model_source"] == "live" and answer["eta_seconds"] > 0
        # The first answer may come late (a backlog from Kafka is learned meanwhile): learn past it.
        late = wait_events(eta_learn, max(300, answer["model_version"] + 1))["metrics"]["RollingMAE"]
        assert late < early  # the producers' events make the model better
        limit = time.monotonic() + 30  # the predictor sees new events within its refresh interval
        while (later := predict_eta())["model_version"] <= answer["model_version"]:
            assert time.monotonic() < limit, later
            time.sleep(0.2)
        tables = _status(delta_sink)["tables"]  # the producers feed the Delta tables too
        assert set(tables) == {"tfd", "eta", "ecci"} and all(t["rows"] > 0 for t in tables.values()), tables
        for url, key in ((tfd_predict, "tfd"), (ecci_predict, "ecci")):
            response = requests.post(url + "/", data=json.dumps(sample(key)), timeout=TIMEOUT_S,
                                     headers={"content-type": "application/json"})
            assert response.status_code in (200, 503), response.text
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=120)  # the learners' final checkpoint and MLflow registration, then MLflow and Valkey
        except subprocess.TimeoutExpired:
            up.terminate()  # its SIGTERM handler stops the platform too: leave nothing running
            up.wait(timeout=120)
            raise
        finally:
            up.stdout.close()
    assert up.returncode == 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", base)) != 0  # the functions are gone
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", base + SERVED)) != 0  # so is the MLflow server
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", base + SERVED + 5)) != 0  # and Prometheus
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", ui)) != 0  # and the web UI
    valkey_url = (tmp_path / "state" / "valkey" / "url").read_text()
    port = int(valkey_url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # and so is the embedded Valkey
    if kafka:
        assert not (tmp_path / "state" / "kafka" / "kafka.pid").exists() or not _pid_alive(
            int((tmp_path / "state" / "kafka" / "kafka.pid").read_text()))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"
