"""Every page and tab through NiceGUI's User fixture (the app in process, no browser) against the real functions.

The answers the UI shows are compared with what the functions answer to the same request, sent directly.
The Batch tab is tested against the real `train` and `<uc>-batch-predict` functions (`batch_ui`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from nicegui import ui
from nicegui.testing import User

from coelho.core import USE_CASES
from coelho_ui import fmt, forms
from coelho_ui.client import Functions
from support import stream
from support.servers import FunctionServer

pytestmark = pytest.mark.slow

TIMEOUT_S = 30
TRAIN_S = 240  # a training on two shared cores


async def see(user: User, target: str | None = None, **filters: Any) -> None:
    """`user.should_see`, patient: the functions answer over real HTTP on a busy machine."""
    await user.should_see(target, retries=int(TIMEOUT_S / 0.1), **filters)


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    """Wait (without blocking the app's event loop) until `condition` holds."""
    for _ in range(int(timeout / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def one(user: User, marker: str) -> Any:
    """The element carrying `marker` (it must be the only one)."""
    elements = user.find(marker=marker).elements
    assert len(elements) == 1, f"{len(elements)} elements marked {marker!r}"
    return next(iter(elements))


def texts(user: User, marker: str) -> list[str]:
    return sorted(element.text for element in user.find(marker=marker).elements)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every prediction request the UI makes: use case, event, version, batch."""
    calls: list[dict[str, Any]] = []
    original = Functions.predict

    async def recording(self: Functions, use_case: str, event: dict[str, Any], version: int | None = None,
                        batch: bool = False) -> Any:
        calls.append({"use_case": use_case, "event": event, "version": version, "batch": batch})
        return await original(self, use_case, event, version, batch)

    monkeypatch.setattr(Functions, "predict", recording)
    yield calls


@pytest.fixture
def known_events(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """Randomise fills these events (one per use case, from the producers, never learned)."""
    events = {key: stream(key, 1, seed=99)[0] for key in USE_CASES}
    monkeypatch.setattr(forms, "random_event", lambda key: events[key])
    return events


def direct(stack: Any, use_case: str, event: dict[str, Any], version: int | None = None) -> dict[str, Any]:
    """The predict function's own answer to `event`."""
    params = {"version": version} if version is not None else None
    response = requests.post(stack.servers[f"{use_case}-predict"].url + "/", json=event, params=params, timeout=30)
    assert response.ok, response.text
    return response.json()


async def test_home_shows_each_use_case_with_live_figures(user: User, stack) -> None:
    await user.open("/")
    await see(user, "Online machine learning on event streams")
    for uc in USE_CASES.values():
        await see(user, uc.title)
    await see(user, "MLflow")  # the tracking server is an http URL: linked as a service
    await until(lambda: texts(user, "card-Events learned") == ["1,200"] * 3, "every card's figures")


@pytest.mark.parametrize("key", ["tfd", "eta", "ecci"])
async def test_prediction_round_trip(user: User, stack, sent, known_events, key: str) -> None:
    await user.open(f"/{key}/incremental")
    await see(user, marker="card-Events applied", content="1,200")
    user.find(marker="randomise").click()
    user.find(marker="predict").click()
    await see(user, marker="result-meta", content="Prediction 1 · live model")
    [call] = sent
    label = USE_CASES[key].label_field
    assert call["event"] == {k: v for k, v in known_events[key].items() if k != label and not k.startswith("debug_")}
    answer = direct(stack, key, call["event"])
    if key == "tfd":
        counts = stack.learners["tfd"].status()["metrics"]["ConfusionMatrix"]
        await see(user, marker="cm-tp", content=fmt.count(counts["tp"]))
        assert [one(user, f"cm-{cell}").text for cell in ("tn", "fp", "fn")] == [
            fmt.count(counts[cell]) for cell in ("tn", "fp", "fn")]
        gauge = one(user, "fraud-gauge")
        assert gauge.options["series"][0]["data"][0]["value"] == round(answer["fraud_probability"] * 100, 1)
        decision = "Fraud" if answer["prediction"] == 1 else "Legitimate"
        await see(user, marker="decision", content=f"{decision} ({fmt.percent(answer['fraud_probability'])})")
    elif key == "eta":
        await see(user, marker="eta", content=fmt.duration(answer["eta_seconds"]))
        trip = one(user, "trip-map")
        markers = [layer.args[0] for layer in trip.layers if getattr(layer, "name", "") == "circleMarker"]
        event = call["event"]
        assert markers == [[event["origin"]["lat"], event["origin"]["lon"]],
                           [event["destination"]["lat"], event["destination"]["lon"]]]
        assert not any(type(layer).__name__ == "TileLayer" for layer in trip.layers)  # tiles off: nothing external
    else:
        await see(user, marker="cluster", content=f"Cluster {answer['cluster']}")
        sizes = one(user, "cluster-sizes").options["series"][0]["data"]
        assert sum(v["value"] if isinstance(v, dict) else v for v in sizes) == 1_200
        assert one(user, "cluster-feature-chart").options["xAxis"]["data"]  # the feature's values in that cluster


async def test_live_model_card_metrics_and_history(mlflow_up, user: User, stack) -> None:
    await user.open("/eta/incremental")
    await see(user, marker="card-Served from", content="live model")
    await see(user, marker="chart-note", content="History of MLflow run")
    status = stack.learners["eta"].status()
    assert one(user, "card-Leader").text == status["holder"]
    assert one(user, "metric-MAE").text == fmt.duration(status["metrics"]["MAE"])
    chart = one(user, "series-chart")
    mae = next(s for s in chart.options["series"] if s["name"] == "MAE")["data"]
    steps = [step for step, _ in mae]
    assert steps[2] - steps[1] == 100 and len(steps) >= 12  # logged every 100 events, step = events applied
    assert mae[-1] == [1_200, pytest.approx(status["metrics"]["MAE"])]


async def test_randomise_fills_a_valid_new_event(user: User, sent) -> None:
    await user.open("/tfd/incremental")
    await see(user, marker="randomise")
    amount = one(user, "field-amount")
    drawn = set()
    for _ in range(5):
        user.find(marker="randomise").click()
        drawn.add(amount.value)
    assert len(drawn) > 1
    user.find(marker="predict").click()
    await see(user, marker="result-meta", content="Prediction 1")
    assert USE_CASES["tfd"].schema.validate(sent[-1]["event"], optional=frozenset({"is_fraud"})) == []


async def test_a_bad_field_is_marked_with_the_functions_reason(user: User, sent) -> None:
    await user.open("/tfd/incremental")
    await see(user, marker="predict")
    one(user, "field-timestamp").value = "yesterday"
    user.find(marker="predict").click()
    await see(user, marker="problems", content="timestamp must be an ISO-8601 timestamp string")
    field = one(user, "field-timestamp")
    assert field.props["error"] is True and "ISO-8601" in field.props["error-message"]
    user.find(marker="randomise").click()  # a valid event again: the marks go away
    assert "error" not in one(user, "field-timestamp").props


async def test_model_selector_lists_versions_and_a_chosen_version_answers(user: User, stack, sent) -> None:
    await user.open("/tfd/incremental")
    await see(user, marker="versions-note", content="registered versions")
    select = one(user, "model-select")
    versions = requests.get(stack.servers["tfd-predict"].url + "/versions", timeout=30).json()["versions"]
    assert [k for k in select.options if k != "live"] == [row["version"] for row in versions]
    champion = next(row["version"] for row in versions if row["champion"])
    assert "★ champion" in select.options[champion] and "1,200 events" in select.options[champion]
    oldest = versions[-1]["version"]
    select.value = oldest
    user.find(marker="predict").click()
    await see(user, marker="result-meta", content=f"mlflow model, version {oldest}")
    answer = direct(stack, "tfd", sent[-1]["event"], oldest)
    assert sent[-1]["version"] == oldest and answer["model_version"] == oldest
    gauge = one(user, "fraud-gauge")
    assert gauge.options["series"][0]["data"][0]["value"] == round(answer["fraud_probability"] * 100, 1)


async def test_sql_default_query_templates_run_and_error(user: User, stack) -> None:
    await user.open("/tfd/sql")
    await see(user, marker="sql-summary", content="100 rows in")  # the function's default query ran on open
    grid = one(user, "grid")
    assert len(grid.options["rowData"]) == 100 and len(grid.options["columnDefs"]) > 20
    await see(user, marker="table-info", content="transaction_fraud_detection (also `data`): 1,500 rows")
    templates = requests.get(stack.servers["sql"].url + "/templates?use_case=tfd", timeout=30).json()["templates"]
    for template in templates:
        await see(user, template["name"], kind=ui.button)
    user.find("Row Count").click()
    assert one(user, "editor").value == next(t["query"] for t in templates if t["name"] == "Row Count")
    user.find(marker="run").click()
    await see(user, marker="sql-summary", content="1 rows in")
    assert grid.options["rowData"] == [{"c0": 1_500}]
    assert grid.options["columnDefs"] == [{"headerName": "row_count", "field": "c0"}]

    editor = one(user, "editor")
    editor.value = "DROP TABLE data"
    user.find(marker="editor").trigger("keybinding", {"key": "Mod-Enter"})  # Ctrl+Enter runs it too
    await see(user, marker="sql-error", content="only a read-only SELECT")
    assert grid.options["rowData"] == [{"c0": 1_500}]  # the last result stays


async def test_batch_tab_says_training_is_not_deployed(user: User) -> None:
    await user.open("/ecci/batch")
    await see(user, marker="not-deployed", content="Batch training is not deployed")
    await see(user, "train is not reachable at")


async def test_deep_links_tabs_and_unknown_use_case(user: User) -> None:
    await user.open("/eta")
    await see(user, marker="predict")  # /eta shows the Incremental tab
    user.find(marker="tab-sql").click()
    await see(user, marker="editor")
    assert user.back_history[-1] == "/eta/sql"
    await user.open("/ecci/batch")
    await see(user, marker="not-deployed")
    await user.open("/nope")
    await see(user, marker="not-found", content="There is no use case 'nope'")


async def test_dark_mode_is_remembered(user: User) -> None:
    from nicegui import app

    await user.open("/")
    await see(user, marker="dark-mode")
    dark = next(iter(user.find(kind=ui.dark_mode).elements))
    assert dark.value is False
    user.find(marker="dark-mode").click()
    assert dark.value is True and app.storage.user["dark"] is True


@pytest.fixture
def lonely_predict(stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionServer]:
    """An eta-predict of its own (on the stack's model), which a test may stop and start again."""
    server = FunctionServer("eta-predict", stack.env, stack.log_dir).start(timeout=120)
    monkeypatch.setenv("COELHO_FUNCTION_URLS", stack.urls(**{"eta-predict": server.url}))
    yield server
    server.stop()


async def test_a_function_stopped_mid_session_is_a_notification_not_a_crash(lonely_predict, user: User) -> None:
    await user.open("/eta/incremental")
    user.find(marker="predict").click()
    await see(user, marker="result-meta", content="Prediction 1 · live model")
    lonely_predict.stop()
    user.find(marker="predict").click()
    await see(user, "eta-predict is not reachable at")  # the notification
    await see(user, marker="banner-text", content="Live figures are paused")
    user.find(marker="randomise").click()  # the page keeps working
    user.find(marker="tab-sql").click()
    await see(user, marker="sql-summary", content="rows in")
    user.find(marker="tab-incremental").click()
    await see(user, marker="predict")
    lonely_predict.start(timeout=120)
    await user.should_not_see(marker="banner", retries=int(TIMEOUT_S / 0.1))  # back: the banner goes
    user.find(marker="predict").click()
    await see(user, marker="result-meta", content="Prediction 1 · live model")


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COELHO_UI_PASSWORD", "s3cret")
    return "s3cret"


async def test_password_protects_every_page(password: str, user: User) -> None:
    await user.open("/tfd/sql")
    await see(user, "Password")
    await user.should_not_see(marker="editor")
    field = next(iter(user.find(kind=ui.input).elements))
    field.value = "wrong"
    user.find("Log in").click()
    await see(user, "Wrong password")
    field.value = password
    user.find("Log in").click()
    await see(user, marker="editor")


def answer_of(url: str, route: str, **params: Any) -> Any:
    """A function's JSON answer to GET `route`."""
    response = requests.get(url + route, params=params, timeout=30)
    assert response.ok, response.text
    return response.json()


def log_lines(user: User) -> list[str]:
    return [label.text for label in one(user, "log").default_slot.children]


async def test_train_from_the_tab_shows_progress_until_its_run_is_the_champion(batch_ui, user: User, sent) -> None:
    await user.open("/ecci/batch")
    await see(user, marker="stage", content="%)")
    one(user, "k").value = 3
    user.find(marker="train").click()
    await see(user, "Training started: run")
    stages, bars, logs = set(), set(), set()

    def finished() -> bool:
        stages.add(one(user, "stage").text)
        bars.add(one(user, "progress").value)
        logs.add(len(log_lines(user)))
        return one(user, "stage").text.startswith(("finished", "failed", "killed"))

    await until(finished, "the training to end", timeout=TRAIN_S)
    status = batch_ui.status("ecci")
    assert one(user, "stage").text == "finished (100 %)", status
    assert any(stage.startswith("running: ") for stage in stages) and len(bars) > 1 and len(logs) > 1  # progress
    assert status["state"] == "finished" and log_lines(user) == status["log"]  # the function's log, as it is
    assert any("K=3" in line for line in status["log"]) and one(user, "progress").value == 1.0

    runs = answer_of(batch_ui.url("train"), "/runs", use_case="ecci")["runs"]
    await until(lambda: [row["run_id"] for row in one(user, "runs").rows] == [run["run_id"] for run in runs],
                "the runs table")
    mine = next(row for row in one(user, "runs").rows if row["run_id"] == status["run_id"])
    assert mine["champion"] == "★" and mine["status"] == "FINISHED" and mine["metrics"].startswith("Silhouette ")
    assert one(user, "run-pick").value == status["run_id"]

    versions = answer_of(batch_ui.url("ecci-batch-predict"), "/versions")["versions"]
    await until(lambda: [key for key in one(user, "model-select").options if key != "live"] ==
                [row["version"] for row in versions], "the new batch version in the model selector")
    user.find(marker="predict").click()
    await see(user, marker="result-meta", content="Prediction 1 · batch model")
    [call] = sent
    assert call["batch"] is True and call["version"] is None
    response = requests.post(batch_ui.url("ecci-batch-predict") + "/", json=call["event"], timeout=30)
    answer = response.json()
    assert answer["run_id"] == status["run_id"] and answer["model_source"] == "batch"
    assert one(user, "cluster").text == f"Cluster {answer['cluster']}"
    assert one(user, "result-meta").text.startswith(f"Prediction 1 · batch model, version {answer['model_version']}")


async def test_runs_diagnostics_comparison_and_a_batch_prediction(batch_ui, trained, user: User, sent,
                                                                   known_events) -> None:
    train = batch_ui.url("train")
    await user.open("/tfd/batch")
    await see(user, marker="runs")
    runs = answer_of(train, "/runs", use_case="tfd")["runs"]
    await until(lambda: len(one(user, "runs").rows) == len(runs), "the runs table")
    rows = one(user, "runs").rows
    assert [row["run_id"] for row in rows] == [run["run_id"] for run in runs]  # newest first
    assert [row["champion"] for row in rows] == ["★" if run["champion"] else "" for run in runs]
    assert trained["run_id"] in {row["run_id"] for row in rows}
    champion = next(run for run in runs if run["champion"])
    assert rows[runs.index(champion)]["metrics"].startswith(f"FBeta {fmt.number(champion['metrics']['FBeta'])}")

    assert one(user, "run-pick").value == champion["run_id"]  # diagnostics of the champion's run first
    figures = answer_of(train, "/diagnostics", use_case="tfd", run_id=champion["run_id"])["figures"]
    await until(lambda: one(user, "figure-pick").options == {f["name"]: f["title"] for f in figures},
                "the figure picker")
    for figure in (figures[0], figures[-1]):
        one(user, "figure-pick").value = figure["name"]
        expected = answer_of(train, "/diagnostics", use_case="tfd", run_id=champion["run_id"], name=figure["name"])
        await see(user, marker="figure-what", content=figure["what"][:40])
        await until(lambda expected=expected: one(user, "figure").figure["data"] == expected["figure"]["data"],
                    f"figure {figure['name']}")
        assert one(user, "figure-how").content == figure["how"]

    comparison = answer_of(train, "/comparison", use_case="tfd")
    assert comparison["rows"]
    await until(lambda: len(one(user, "comparison").rows) == len(comparison["rows"]), "the comparison table")
    assert one(user, "comparison").rows == [
        {"metric": row["metric"], **{column: fmt.number(row[column]) for column in
                                     ("batch", "online_frozen", "online_prequential")}} for row in comparison["rows"]]
    await see(user, marker="comparison-note", content=f"{fmt.count(comparison['test_rows'])} test rows")

    user.find(marker="randomise").click()
    user.find(marker="predict").click()
    await see(user, marker="result-meta", content="Prediction 1 · batch model")
    [call] = sent
    response = requests.post(batch_ui.url("tfd-batch-predict") + "/", json=call["event"], timeout=30)
    answer = response.json()
    assert call["batch"] is True and answer["model_version"] == champion["version"]
    gauge = one(user, "fraud-gauge")
    assert gauge.options["series"][0]["data"][0]["value"] == round(answer["fraud_probability"] * 100, 1)
    decision = "Fraud" if answer["prediction"] == 1 else "Legitimate"
    await see(user, marker="decision", content=f"{decision} ({fmt.percent(answer['fraud_probability'])})")


@pytest.fixture
def long_train(batch, stack, mlflow_up, monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionServer]:
    """A train function of its own whose trainings boost for a very long time (only a stop ends them); it reaches
    MLflow through the tracking server (MLFLOW_TRACKING_URI of the UI's environment), as on a cluster."""
    log_dir = stack.log_dir / "long-train"
    log_dir.mkdir(exist_ok=True)
    server = FunctionServer("train", batch.env, log_dir, COELHO_TRAIN_ITERATIONS="200000",
                            COELHO_TRAIN_EARLY_STOPPING="200000").start(timeout=120)
    monkeypatch.setenv("COELHO_FUNCTION_URLS", stack.urls(**(batch.urls() | {"train": server.url})))
    yield server
    server.stop()


async def test_a_second_train_is_refused_and_stop_kills_the_training(long_train: FunctionServer, batch,
                                                                      user: User) -> None:
    await user.open("/eta/batch")
    await see(user, marker="stage", content="%)")
    # someone else starts a training (another browser, kn, a JobSink) before this page polls again
    started = requests.post(long_train.url + "/", json={"use_case": "eta"}, timeout=60)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    user.find(marker="train").click()  # still enabled here: the page has not polled since
    await see(user, f"Already training: run {run_id} since")  # the function's 409, as a notification
    await see(user, marker="stage", content="running: training")
    await see(user, marker="message", content="iteration")
    user.find(marker="stop").click()
    await see(user, "Stopping the training")
    await until(lambda: one(user, "stage").text.startswith("killed"), "the killed state", timeout=TRAIN_S)
    status = batch.status("eta", long_train.url)
    assert status["state"] == "killed" and status["run_id"] == run_id
    await see(user, marker="message", content="nothing registered")
    await until(lambda: any(row["run_id"] == run_id and row["status"] == "KILLED" for row in one(user, "runs").rows),
                "the killed run in the runs table")
