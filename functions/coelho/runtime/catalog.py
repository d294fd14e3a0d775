"""The deployable functions: name, source file, target and signature of each.

This table is what `coelho fn list` prints, what `coelho fn serve` runs and what the Knative
Service manifests reference (FUNCTION_TARGET / FUNCTION_SIGNATURE_TYPE).

>>> [f.name for f in FUNCTIONS if f.use_case == "tfd"]
['tfd-learn', 'tfd-predict', 'tfd-batch-predict']
>>> [f.name for f in FUNCTIONS if f.role in ("train", "batch-predict")]
['train', 'tfd-batch-predict', 'eta-batch-predict', 'ecci-batch-predict']
>>> find("eta-predict").command(9000)[-8:]
['--target', 'eta_predict', '--source', '.../predict/main.py', '--signature-type', 'http', '--port', '9000']
>>> local_port("tfd-learn"), local_port("tfd-predict", base_port=9000), local_port("hello-http")
(8081, 9001, None)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coelho.config import Settings

__all__ = ["BASE_PORT", "FUNCTIONS", "FunctionSpec", "find", "functions_dir", "local_port"]

Role = Literal["learn", "predict", "query", "sink", "train", "batch-predict", "baseline"]

#: The port of the first function `coelho up` serves; the others follow in catalog order.
BASE_PORT = 8081


def functions_dir() -> Path:
    """Folder holding the entry points: COELHO_FUNCTIONS_DIR, else this checkout's functions/."""
    return Settings.from_env().functions_dir or Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FunctionSpec:
    """One deployable function."""

    name: str
    folder: str
    target: str
    signature: Literal["cloudevent", "http"]
    role: Role
    use_case: str | None = None
    threads: int | None = None  # gunicorn threads (functions-framework's THREADS); None: its default, 4 per core
    server: Literal["flask", "asgi"] = "flask"  # which functions-framework server its decorator selects

    def environment(self) -> dict[str, str]:
        """Variables the function's container sets by default (the process environment overrides them)."""
        return {"THREADS": str(self.threads)} if self.threads else {}

    @property
    def source(self) -> Path:
        return functions_dir() / self.folder / "main.py"

    def command(self, port: int) -> list[str]:
        """The functions-framework command line that serves this function on `port`."""
        runner = str(Path(sys.executable).with_name("functions-framework"))
        return [
            runner, "--target", self.target, "--source", str(self.source),
            "--signature-type", self.signature, "--port", str(port),
        ]


FUNCTIONS: tuple[FunctionSpec, ...] = tuple(
    spec
    for key in ("tfd", "eta", "ecci")
    for spec in (
        FunctionSpec(f"{key}-learn", "learn", f"{key}_learn", "http", "learn", key, server="asgi"),
        FunctionSpec(f"{key}-predict", "predict", f"{key}_predict", "http", "predict", key),
    )
) + (
    FunctionSpec("sql", "sql", "sql", "http", "query"),
    # Its requests mostly wait for their micro-batch's commit: more threads, larger shared commits.
    FunctionSpec("delta-sink", "delta_sink", "delta_sink", "cloudevent", "sink", threads=64),
    FunctionSpec("train", "train", "train", "http", "train"),
    *(FunctionSpec(f"{key}-batch-predict", "batch_predict", f"{key}_batch_predict", "http", "batch-predict", key)
      for key in ("tfd", "eta", "ecci")),
    FunctionSpec("hello-event", "hello", "hello_event", "http", "baseline", server="asgi"),
    FunctionSpec("hello-http", "hello", "hello_http", "http", "baseline"),
)


def find(name: str) -> FunctionSpec:
    """The function called `name`; raises KeyError listing the known names."""
    for spec in FUNCTIONS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown function {name!r}; known: {', '.join(f.name for f in FUNCTIONS)}")


def local_port(name: str, base_port: int = BASE_PORT) -> int | None:
    """The port `coelho up` serves function `name` on (None: a baseline, or not in this catalog)."""
    served = [spec.name for spec in FUNCTIONS if spec.role != "baseline"]
    return base_port + served.index(name) if name in served else None
