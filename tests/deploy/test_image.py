"""The image runs: built (podman, a Debian base made with mmdebstrap since no registry is reachable), then the
tfd-learn, tfd-predict and sql containers run with the environment their Knative Services define (plus PORT, K_SERVICE
and K_REVISION as Knative injects them; the cluster's addresses replaced by this host's) against a Valkey on the host,
read-only root file system, as the image's non-root user."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from coelho.deploy.container import Container, service_environment, settings_configmap
from coelho.deploy.knative import IMAGE
from support import ROOT, binary, make_event, stream, table_rows, write_table
from support.servers import free_port

# The first run builds the Debian base (~2 min) and the image (~5 min, more on a busy machine): timeouts as for them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
BASE = "localhost/coelho-base:bookworm-py311"
SIGNING_KEY = "container-test-signing-key"
EVENTS = 40


@pytest.fixture(scope="module")
def image() -> str:
    """The function image, built from the Containerfile (cached layers make a rebuild quick)."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.fail("podman and mmdebstrap are needed (make system installs them)")
    subprocess.run([str(ROOT / "infra" / "image" / "base.sh"), BASE], check=True, timeout=1200)
    subprocess.run([str(ROOT / "infra" / "image" / "build.sh"), "--base", BASE, "--target", "runtime", IMAGE],
                   check=True, timeout=2400, stdout=subprocess.DEVNULL)
    return IMAGE


@pytest.fixture
def settings(redis_url, key_prefix) -> dict[str, str]:
    """The cluster's settings ConfigMap with this host's services: Valkey here, MLflow off, no S3."""
    return {**settings_configmap(ROOT / "infra" / "knative" / "settings.yaml"),
            "COELHO_KEY_PREFIX": key_prefix, "COELHO_MLFLOW": "off", "AWS_ENDPOINT_URL": ""}


@pytest.fixture
def run(image) -> Iterator:
    started: list[Container] = []

    def start(name: str, env: dict[str, str], volumes: dict[Path, str] | None = None) -> Container:
        container = Container(image, env, int(env["PORT"]), volumes).start()
        started.append(container)
        container.wait_healthy()
        return container

    yield start
    for container in started:
        container.stop()


def test_learn_and_predict_containers_answer_as_on_knative(run, settings, redis_url):
    secrets = {"REDIS_URL": redis_url, "COELHO_SIGNING_KEY": SIGNING_KEY}
    learn = run("tfd-learn", service_environment("tfd-learn", secrets, settings, free_port()))
    predict = run("tfd-predict", service_environment("tfd-predict", secrets, settings, free_port()))
    assert requests.get(learn.url + "/healthz", timeout=5).status_code == 200
    assert learn.exec("id", "-u").strip() == "10001" and predict.exec("id", "-un").strip() == "coelho"
    # the catalog inside the image points at the very entry point the Service names
    assert "/opt/coelho/functions/learn/main.py" in learn.exec("coelho", "fn", "list")
    payloads = stream("tfd", EVENTS)
    for payload in payloads:
        headers, body = binary(make_event("tfd", payload))
        assert requests.post(learn.url + "/", headers=headers, data=body, timeout=10).status_code == 200
    sample = {k: v for k, v in payloads[-1].items() if k != "is_fraud"}
    deadline = time.monotonic() + 30
    while True:
        answer = requests.post(predict.url + "/", json=sample, timeout=10)
        if answer.status_code == 200 and answer.json()["model_version"] == EVENTS:
            break
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    body = answer.json()
    assert body["model_source"] == "live" and 0.0 <= body["fraud_probability"] <= 1.0
    status = requests.get(learn.url + "/status", timeout=10).json()
    assert status["events_applied"] == EVENTS


@pytest.fixture
def lakehouse() -> Iterator[Path]:
    """A Delta table folder the container's user can read (pytest's own temp dirs are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="coelho-lakehouse-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


def test_sql_container_reads_a_mounted_delta_table(run, settings, lakehouse):
    payloads = stream("tfd", 25)
    write_table(str(lakehouse / "tfd"), "tfd", table_rows("tfd", payloads))
    for path in lakehouse.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    secrets = {"AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused"}
    env = service_environment("sql", secrets, {**settings, "COELHO_DELTA_ROOT": "/lakehouse"}, free_port())
    sql = run("sql", env, {lakehouse: "/lakehouse"})
    answer = requests.post(sql.url + "/", json={"use_case": "tfd", "query": "SELECT count(*) AS n FROM data"},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [[25]]


def test_ui_container_serves_the_web_ui(image, settings):
    """`coelho ui` from the same image, as the `ui` Deployment runs it (its command, /tmp as working directory)."""
    port = free_port()
    env = {**settings, "COELHO_FUNCTION_URL_TEMPLATE": "http://{name}.coelho.svc.cluster.local"}
    ui = Container(image, env, port, command=["ui", "--port", str(port)], entrypoint="coelho", workdir="/tmp").start()
    try:
        ui.wait_healthy()
        page = requests.get(ui.url + "/tfd/incremental", timeout=30)
        assert page.status_code == 200 and "<title>COELHO RealTime</title>" in page.text
        assert ui.exec("id", "-u").strip() == "10001"
    finally:
        ui.stop()
