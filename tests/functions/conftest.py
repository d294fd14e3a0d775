"""Apps built by functions-framework itself, as in its own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import flask
import functions_framework
import pytest
from flask.testing import FlaskClient
from starlette.testclient import TestClient

from coelho.runtime.catalog import FUNCTIONS
from coelho.runtime.lifecycle import LIFECYCLE
from support import ROOT


class AsgiResponse:
    """A Starlette test response with the Flask test response's accessors the tests use."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.status_code: int = response.status_code
        self.headers = response.headers

    def get_json(self) -> Any:
        return self.response.json()

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.response.text if as_text else self.response.content


class AsgiClient:
    """Starlette's TestClient of an ASGI target (the learn functions) behind the Flask test client's calls."""

    def __init__(self, app: Any) -> None:
        self.client = TestClient(app)

    def get(self, path: str) -> AsgiResponse:
        return AsgiResponse(self.client.get(path))

    def post(self, path: str, headers: dict[str, str] | None = None, data: bytes | str = b"",
             content_type: str | None = None) -> AsgiResponse:
        headers = dict(headers or {})
        if content_type is not None:
            headers["content-type"] = content_type
        return AsgiResponse(self.client.post(path, headers=headers, content=data))


Client = FlaskClient | AsgiClient
AppFactory = Callable[[str], Client]


@pytest.fixture
def client(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[AppFactory]:
    """`client("tfd_learn")` → a test client of that target, configured like a container."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def build(target: str) -> Client:
        spec = next(spec for spec in FUNCTIONS if spec.target == target)
        source = ROOT / "functions" / spec.folder / "main.py"
        app = functions_framework.create_app(target, str(source), spec.signature)
        return app.test_client() if isinstance(app, flask.Flask) else AsgiClient(app)

    yield build
    LIFECYCLE.close_all()
