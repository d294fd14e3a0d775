"""MLflow as the models' history: runs, metrics, registered versions and the `champion` alias.

Every call is synchronous and may raise (the caller buffers and retries, see
`coelho.runtime.outbox`). Experiments are named after the use case's title, registered models
`coelho-<use case>`; each version carries its candidate facts as tags (`coelho.score`,
`coelho.window`, `coelho.events_applied`, watermarks), from which `coelho.core.champion` picks
the version the `champion` alias points to. Model bytes are the HMAC-signed blob, verified at
every load.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from coelho.adapters.mlflow_pyfunc import load_blob, save_pyfunc
from coelho.core.champion import Candidate, Window, choose
from coelho.core.online import OnlineModel
from coelho.core.usecase import UseCase

__all__ = ["ALIAS", "Champion", "MlflowRegistry", "model_name"]

ALIAS = "champion"
MODEL_DIR = "model"
BLOB_FILE = "model.bin"

# MLflow's REST client retries for minutes by default; our outbox retries instead, so a call
# to a server that is down fails fast and never holds a request or a lock for long.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
# Models name their requirements; MLflow must not look for a uv project in the working directory and copy
# this checkout's uv.lock and pyproject.toml into every logged model.
os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")
os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")


def model_name(use_case: UseCase) -> str:
    """The registered model of a use case: coelho-tfd, coelho-eta, coelho-ecci."""
    return f"coelho-{use_case.key}"


@dataclass(frozen=True)
class Champion:
    """The model the `champion` alias points to, verified, with its version's tags."""

    version: int
    model: OnlineModel
    tags: dict[str, str]
    run_id: str | None


class MlflowRegistry:
    """One use case's experiment and registered model on one tracking server."""

    def __init__(self, use_case: UseCase, tracking_uri: str, artifact_root: Path, signing_key: bytes) -> None:
        self.use_case = use_case
        self.name = model_name(use_case)
        self.tracking_uri = tracking_uri
        self.local = not tracking_uri.startswith(("http://", "https://", "databricks"))
        self.artifact_root = artifact_root
        self.signing_key = signing_key
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None

    # runs ----------------------------------------------------------------------------------
    def experiment_id(self) -> str:
        """The use case's experiment, created on first use (artifacts under the data dir when local)."""
        if self._experiment_id is None:
            title = self.use_case.title
            found = self.client.get_experiment_by_name(title)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                location = (self.artifact_root / self.use_case.key).as_uri() if self.local else None
                self._experiment_id = self.client.create_experiment(
                    title, artifact_location=location, tags={"coelho.use_case": self.use_case.key})
        return self._experiment_id

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """Create a run with its params and lineage tags; returns its id."""
        run = self.client.create_run(self.experiment_id(), run_name=run_name, tags=dict(tags))
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int, timestamp_ms: int) -> None:
        """One batch of metric values at `step`."""
        batch = [Metric(k, float(v), timestamp_ms, step) for k, v in metrics.items()]
        for start in range(0, len(batch), 1000):
            self.client.log_batch(run_id, metrics=batch[start : start + 1000])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Add or overwrite run tags."""
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close the run."""
        self.client.set_terminated(run_id, status)

    # versions ------------------------------------------------------------------------------
    def register(self, run_id: str, blob: bytes, tags: Mapping[str, str], artifact_path: str) -> int:
        """Log the signed blob as a pyfunc model under the run and register it; returns the version."""
        load_blob(blob, self.signing_key)  # never publish bytes we could not load back
        with tempfile.TemporaryDirectory(prefix="coelho-mlflow-") as tmp:
            local = save_pyfunc(Path(tmp) / MODEL_DIR, blob, self.use_case)
            self.client.log_artifacts(run_id, str(local), artifact_path)
        try:
            self.client.create_registered_model(self.name, tags={"coelho.use_case": self.use_case.key})
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = self.client.create_model_version(
            self.name, source=f"runs:/{run_id}/{artifact_path}", run_id=run_id, tags=dict(tags))
        return int(version.version)

    def candidates(self) -> list[Candidate]:
        """Every registered version as the champion rule sees it (from its tags)."""
        out = []
        for version in self.client.search_model_versions(f"name='{self.name}'"):
            tags = version.tags or {}
            if "coelho.window" not in tags:
                continue
            score = tags.get("coelho.score")
            out.append(Candidate(int(version.version), float(score) if score not in (None, "", "None") else None,
                                 Window.parse(tags["coelho.window"]), int(tags.get("coelho.events_applied", 0))))
        return out

    def update_champion(self) -> int | None:
        """Point the `champion` alias at the rule's choice; returns that version (None: no eligible one)."""
        best = choose(self.candidates(), self.use_case.champion)
        if best is None:
            return None
        current = self.champion_version()
        if current != best.version:
            self.client.set_registered_model_alias(self.name, ALIAS, str(best.version))
        return best.version

    def champion_version(self) -> int | None:
        """The version the alias points to, if any."""
        try:
            return int(self.client.get_model_version_by_alias(self.name, ALIAS).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise

    def load_champion(self, known: Champion | None = None) -> Champion | None:
        """The champion's verified model (`known` is returned as is when still the champion)."""
        version = self.champion_version()
        if version is None:
            return None
        if known is not None and known.version == version:
            return known
        return self.load_version(version)

    def load_version(self, version: int) -> Champion:
        """The verified model of registered `version`; raises LookupError when there is no such version."""
        try:
            details = self.client.get_model_version(self.name, str(version))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise LookupError(f"{self.name} has no version {version}") from None
            raise
        with tempfile.TemporaryDirectory(prefix="coelho-champion-") as tmp:
            local = self.client.download_artifacts(details.run_id, f"{_artifact_path(details.source)}/artifacts",
                                                   tmp)
            blob = (Path(local) / BLOB_FILE).read_bytes()
        return Champion(version, load_blob(blob, self.signing_key), dict(details.tags or {}), details.run_id)

    def versions(self) -> list[dict[str, Any]]:
        """Every registered version, newest first: champion flag, score on the rule's window, events, creation."""
        champion = self.champion_version()
        found = sorted(self.client.search_model_versions(f"name='{self.name}'"), key=lambda v: -int(v.version))
        return [_version_row(v, champion, self.use_case.champion.rolling) for v in found]


def _version_row(version: Any, champion: int | None, metric: str) -> dict[str, Any]:
    tags = version.tags or {}
    score = tags.get("coelho.score")
    events = tags.get("coelho.events_applied")
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(timespec="seconds")
    return {
        "version": int(version.version),
        "champion": int(version.version) == champion,
        "score": float(score) if score not in (None, "", "None") else None,
        "metric": metric,
        "events_applied": int(events) if events else None,
        "created_at": created,
    }


def _artifact_path(source: str) -> str:
    """`runs:/<run>/<path>` → `<path>`."""
    return source.split("/", 2)[2] if source.startswith("runs:/") else MODEL_DIR
