"""The web UI's pure parts: what it imports, its forms against the schemas, its settings."""

from __future__ import annotations

import json
import subprocess
import sys

from coelho.config import Settings
from coelho.core import USE_CASES
from coelho_ui.results import tile_url
from coelho_ui.usecases import VIEWS, schema_field


def test_the_ui_is_only_an_http_client():
    """Loading every page imports none of the functions' runtime or adapters (Redis state, MLflow, Delta, DuckDB).

    It imports the event schemas and the producers' generators (plain code, for the forms); the `redis` package
    itself comes in with python-socketio (NiceGUI's websocket), which imports its optional Redis manager.
    """
    code = ("import json, sys; import coelho_ui.main, coelho_ui.pages.batch, coelho_ui.pages.sql; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True, timeout=120).stdout))
    forbidden = {"mlflow", "flask", "duckdb", "deltalake", "catboost", "coelho.adapters"}
    assert loaded & forbidden == set()
    assert [name for name in loaded if name.startswith("coelho.runtime.")] == ["coelho.runtime.catalog"]
    assert {"aiohttp", "nicegui", "coelho.runtime.catalog"} <= loaded


def test_every_required_field_has_a_place_in_the_form():
    for key, uc in USE_CASES.items():
        paths = {field.path for group in VIEWS[key].groups for field in group.fields}
        for spec in uc.schema.fields:
            if spec.required and spec.name != uc.label_field:
                wanted = {f"{spec.name}.{member.name}" for member in spec.fields} or {spec.name}
                assert wanted <= paths, (key, wanted - paths)
        assert uc.label_field not in paths  # the model predicts it
        for path in paths:
            schema_field(uc, path)  # every form field is in the schema


def test_every_charted_metric_has_a_card():
    for view in VIEWS.values():
        assert set(view.charted) <= {m.name for m in view.metrics}
        assert view.champion_metric in {m.name for m in view.metrics}


def test_map_tiles_are_configurable_and_can_be_off():
    assert tile_url(Settings()) == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert tile_url(Settings.from_env({"COELHO_UI_TILE_URL": "off"})) is None
    assert tile_url(Settings(ui_tile_url="http://tiles.local/{z}/{x}/{y}.png")) == "http://tiles.local/{z}/{x}/{y}.png"
