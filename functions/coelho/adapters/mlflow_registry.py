"""MLflow as the models' history: runs, metrics, registered versions and the `champion` alias.

Every call is synchronous and may raise (the caller buffers and retries, see
`coelho.runtime.outbox`), so every call is safe to repeat: a retry after an answer lost to a server
restart finds the experiment, the run (by its `coelho.holder` tag) or the version (by its source)
that the first attempt created instead of creating a second one. Experiments are named after the use
case's title, registered models `coelho-<use case>`; each version carries its candidate facts as tags
(`coelho.score`, `coelho.window`, `coelho.events_applied`, watermarks), from which
`coelho.core.champion` picks the version the `champion` alias points to. Model bytes are the
HMAC-signed blob, verified at every load.
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

__all__ = ["ALIAS", "Champion", "MlflowRegistry", "UseCaseStore", "alias_version", "ensure_experiment",
           "ensure_registered_model", "model_name", "point_alias", "version_candidates"]

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


def ensure_experiment(client: MlflowClient, use_case: UseCase, artifact_root: Path, local: bool) -> str:
    """The use case's experiment (named after its title), created on first use; artifacts under the data dir
    when the store is local. Online and batch runs share it."""
    found = client.get_experiment_by_name(use_case.title)
    if found is not None:
        return str(found.experiment_id)
    location = (artifact_root / use_case.key).as_uri() if local else None
    try:
        return str(client.create_experiment(use_case.title, artifact_location=location,
                                            tags={"coelho.use_case": use_case.key}))
    except MlflowException as exc:  # created meanwhile, by another process or an attempt whose answer was lost
        found = client.get_experiment_by_name(use_case.title)
        if found is None:
            raise exc from None
        return str(found.experiment_id)


def ensure_registered_model(client: MlflowClient, name: str, use_case: UseCase) -> None:
    """Create registered model `name` unless it exists."""
    try:
        client.create_registered_model(name, tags={"coelho.use_case": use_case.key})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def version_candidates(client: MlflowClient, name: str, events_tag: str) -> list[Candidate]:
    """Every version of `name` as the champion rule sees it: score, window and `events_tag` from its tags."""
    out = []
    for version in client.search_model_versions(f"name='{name}'"):
        tags = version.tags or {}
        if "coelho.window" not in tags:
            continue
        score = tags.get("coelho.score")
        out.append(Candidate(int(version.version), float(score) if score not in (None, "", "None") else None,
                             Window.parse(tags["coelho.window"]), int(tags.get(events_tag, 0))))
    return out


def alias_version(client: MlflowClient, name: str) -> int | None:
    """The version the `champion` alias of `name` points to, if any."""
    try:
        return int(client.get_model_version_by_alias(name, ALIAS).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def point_alias(client: MlflowClient, name: str, best: Candidate | None) -> int | None:
    """Point the `champion` alias of `name` at `best` (unchanged when it already does); returns its version."""
    if best is None:
        return None
    if alias_version(client, name) != best.version:
        client.set_registered_model_alias(name, ALIAS, str(best.version))
    return best.version


@dataclass(frozen=True)
class Champion:
    """A registered version's verified model (the one the `champion` alias points to, usually) and its tags."""

    version: int
    model: OnlineModel
    tags: dict[str, str]
    run_id: str | None


class UseCaseStore:
    """A use case's experiment and one of its registered models (`name`) on one tracking server."""

    def __init__(self, use_case: UseCase, name: str, tracking_uri: str, artifact_root: Path) -> None:
        self.use_case = use_case
        self.name = name
        self.tracking_uri = tracking_uri
        self.local = not tracking_uri.startswith(("http://", "https://", "databricks"))
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None

    def experiment_id(self) -> str:
        """The use case's experiment, created on first use (artifacts under the data dir when local)."""
        if self._experiment_id is None:
            self._experiment_id = ensure_experiment(self.client, self.use_case, self.artifact_root, self.local)
        return self._experiment_id


class MlflowRegistry(UseCaseStore):
    """One use case's experiment and its online model `coelho-<uc>`: runs, signed versions, the champion."""

    def __init__(self, use_case: UseCase, tracking_uri: str, artifact_root: Path, signing_key: bytes) -> None:
        super().__init__(use_case, model_name(use_case), tracking_uri, artifact_root)
        self.signing_key = signing_key

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """Create a run with its params and lineage tags (or find the one of this `coelho.holder`); its id."""
        holder = tags["coelho.holder"]
        found = self.client.search_runs([self.experiment_id()], f"tags.`coelho.holder` = '{holder}'", max_results=1)
        run_id = found[0].info.run_id if found else \
            self.client.create_run(self.experiment_id(), run_name=run_name, tags=dict(tags)).info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run_id

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
        ensure_registered_model(self.client, self.name, self.use_case)
        source = f"runs:/{run_id}/{artifact_path}"
        for existing in self.client.search_model_versions(f"name='{self.name}' and run_id='{run_id}'"):
            if existing.source == source:  # registered by an attempt whose answer was lost
                return int(existing.version)
        version = self.client.create_model_version(self.name, source=source, run_id=run_id, tags=dict(tags))
        return int(version.version)

    def candidates(self) -> list[Candidate]:
        """Every registered version as the champion rule sees it (from its tags)."""
        return version_candidates(self.client, self.name, "coelho.events_applied")

    def update_champion(self) -> int | None:
        """Point the `champion` alias at the rule's choice; returns that version (None: no eligible one)."""
        return point_alias(self.client, self.name, choose(self.candidates(), self.use_case.champion))

    def champion_version(self) -> int | None:
        """The version the alias points to, if any."""
        return alias_version(self.client, self.name)

    def load_champion(self, known: Champion | None = None) -> Champion | None:
        """The champion's verified model (`known` is returned as is when still the champion)."""
        version = self.champion_version()
        if version is None:
            return None
        if known is not None and known.version == version:
            return known
        return self.load_version(version)

    def version_tags(self) -> dict[int, dict[str, str]]:
        """Every registered version's tags (watermarks, scores), by version."""
        return {int(v.version): dict(v.tags or {}) for v in self.client.search_model_versions(f"name='{self.name}'")}

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
