"""Apps built by functions-framework itself, as in its own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import functions_framework
import pytest
from flask.testing import FlaskClient

from coelho.runtime.services import close_all
from support import ROOT

AppFactory = Callable[[str], FlaskClient]


@pytest.fixture
def client(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[AppFactory]:
    """`client("tfd_learn")` → a test client of that target, configured like a container."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def build(target: str) -> FlaskClient:
        folder, signature = ("learn", "cloudevent") if target.endswith("_learn") else ("predict", "http")
        if target == "delta_sink":
            folder, signature = "delta_sink", "cloudevent"
        if target.startswith("hello"):
            folder, signature = "hello", "cloudevent" if target == "hello_event" else "http"
        source = ROOT / "functions" / folder / "main.py"
        return functions_framework.create_app(target, str(source), signature).test_client()

    yield build
    close_all()
