"""Apps built by functions-framework itself, as in its own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import functions_framework
import pytest
from flask.testing import FlaskClient

from coelho.runtime.catalog import FUNCTIONS
from coelho.runtime.services import close_all
from support import ROOT

AppFactory = Callable[[str], FlaskClient]


@pytest.fixture
def client(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[AppFactory]:
    """`client("tfd_learn")` → a test client of that target, configured like a container."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def build(target: str) -> FlaskClient:
        spec = next(spec for spec in FUNCTIONS if spec.target == target)
        source = ROOT / "functions" / spec.folder / "main.py"
        return functions_framework.create_app(target, str(source), spec.signature).test_client()

    yield build
    close_all()
