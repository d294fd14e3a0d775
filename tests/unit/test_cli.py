"""The `coelho` command line."""

from __future__ import annotations

import subprocess
import sys

from coelho.runtime.catalog import FUNCTIONS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coelho.cli", *args], capture_output=True, text=True, timeout=60)


def test_help_explains_the_commands():
    out = run("--help").stdout
    for word in ("up", "produce", "fn", "ui", "REDIS_URL", "COELHO_SIGNING_KEY", "COELHO_FUNCTION_URLS"):
        assert word in out


def test_ui_help_names_its_settings():
    out = run("ui", "--help").stdout
    for word in ("--port", "--host", "COELHO_FUNCTION_URL_TEMPLATE", "COELHO_UI_PASSWORD", "COELHO_UI_TILE_URL"):
        assert word in out


def test_fn_list_prints_every_function_with_source_and_target():
    out = run("fn", "list").stdout
    for spec in FUNCTIONS:
        assert spec.name in out and spec.target in out and str(spec.source) in out
    assert {line.split()[2] for line in out.splitlines()[1:]} == {"flask", "asgi"}
    assert all(spec.source.exists() for spec in FUNCTIONS)


def test_fn_serve_unknown_name_is_a_clear_error():
    result = run("fn", "serve", "nope")
    assert result.returncode == 2 and "known: tfd-learn" in result.stderr
