"""Batch runs in MLflow: the use case's experiment (shared with the online runs), `coelho-<uc>-batch` versions.

A batch run is tagged `coelho.training_mode=batch` and holds: params (every model parameter, the split
settings, the request), the test metrics under the online suites' names (step 0), the per-iteration curves
(`learn.<metric>` / `validation.<metric>`, step = iteration) or the K search (`k_search.<metric>`, step =
K), the Delta inputs (`log_inputs` with a `DeltaDatasetSource`: table path and version, one dataset per
block with its digest), `comparison.json` (online vs batch on the same rows, also as an MLflow table),
`diagnostics/` (`index.json`, and `<name>.json` + `<name>.png` per figure), and the model (`model/`, a
pyfunc from code with `model.cbm` or `model.skops`). Its registered version carries the champion rule's
facts as tags (`coelho.score`, `coelho.window` = `test.<metric>/<min rows>`, `coelho.test_rows`), from which
`coelho.core.champion` points the `champion` alias.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from coelho.adapters.batch_model import BatchModel
from coelho.adapters.mlflow_registry import (
    UseCaseStore,
    alias_version,
    ensure_registered_model,
    point_alias,
    version_candidates,
)
from coelho.core.champion import choose, test_window
from coelho.core.diagnostics import Figure
from coelho.core.usecase import UseCase

__all__ = ["BatchRegistry", "UnknownRun", "UnknownVersion", "batch_model_name"]

MODEL_DIR = "model"
DIAGNOSTICS_DIR = "diagnostics"
COMPARISON_FILE = "comparison.json"
COMPARISON_COLUMNS = ("metric", "batch", "online_frozen", "online_prequential")
TRAINING_MODE = "batch"
PARAM_MAX = 6000
#: Metric-name prefixes of what is not a test metric: curves, stage timings.
CURVE_PREFIXES = ("learn.", "validation.", "k_search.", "stage_seconds.")


def batch_model_name(use_case: UseCase) -> str:
    """coelho-tfd-batch, coelho-eta-batch, coelho-ecci-batch."""
    return f"coelho-{use_case.key}-batch"


class UnknownRun(LookupError):
    """No batch run (or artifact) with that id."""


class UnknownVersion(LookupError):
    """No such registered version."""


class BatchRegistry(UseCaseStore):
    """One use case's batch runs and `coelho-<uc>-batch` versions on one tracking server."""

    def __init__(self, use_case: UseCase, tracking_uri: str, artifact_root: Path) -> None:
        super().__init__(use_case, batch_model_name(use_case), tracking_uri, artifact_root)

    # writing a run ------------------------------------------------------------------------------------------
    def start_run(self, run_name: str, tags: Mapping[str, str]) -> str:
        """Create a RUNNING batch run; returns its id."""
        all_tags = {"coelho.training_mode": TRAINING_MODE, "coelho.use_case": self.use_case.key, **tags}
        return str(self.client.create_run(self.experiment_id(), run_name=run_name, tags=all_tags).info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)[:PARAM_MAX]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], timestamp_ms: int) -> None:
        """Scalar metrics at step 0."""
        self._log([Metric(k, float(v), timestamp_ms, 0) for k, v in metrics.items()], run_id)

    def log_curves(self, run_id: str, curves: Mapping[str, Mapping[int, float]], timestamp_ms: int) -> None:
        """Metric series: name → {step: value}."""
        self._log([Metric(name, float(value), timestamp_ms, int(step))
                   for name, series in curves.items() for step, value in series.items()], run_id)

    def _log(self, metrics: list[Metric], run_id: str) -> None:
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def log_inputs(self, run_id: str, uri: str, version: int, blocks: Mapping[str, Mapping[str, Any]]) -> None:
        """One dataset per block (context = block name): the Delta table at `version`, its digest and row count."""
        source = DeltaDatasetSource(path=uri, delta_table_version=version)
        inputs = [
            DatasetInput(MetaDataset(source, name=f"{self.use_case.key}-{block}@v{version}",
                                     digest=str(facts["digest"])[:36])._to_mlflow_entity(),
                         tags=[InputTag(MLFLOW_DATASET_CONTEXT, block), InputTag("rows", str(facts["rows"])),
                               InputTag("sha256", str(facts["digest"]))])
            for block, facts in blocks.items()
        ]
        self.client.log_inputs(run_id, datasets=inputs)

    def log_json(self, run_id: str, document: Mapping[str, Any], path: str) -> None:
        self.client.log_dict(run_id, dict(document), path)

    def log_comparison(self, run_id: str, comparison: Mapping[str, Any]) -> None:
        """`comparison.json`, and the same rows as an MLflow table (shown in the run's evaluation view)."""
        self.log_json(run_id, comparison, COMPARISON_FILE)
        import pandas as pd

        rows = comparison["rows"]
        table = pd.DataFrame({column: pd.Series([row[column] for row in rows], dtype=object if column == "metric"
                                                else float) for column in COMPARISON_COLUMNS})
        self.client.log_table(run_id, table, "comparison_table.json")  # object, not str: pandas 3 warns otherwise

    def log_figures(self, run_id: str, figures: Sequence[Figure], pngs: Mapping[str, bytes]) -> None:
        """`diagnostics/index.json` and each figure's JSON and PNG."""
        with tempfile.TemporaryDirectory(prefix="coelho-diagnostics-") as tmp:
            folder = Path(tmp)
            (folder / "index.json").write_text(json.dumps([figure.summary() for figure in figures], indent=2))
            for figure in figures:
                (folder / f"{figure.name}.json").write_text(json.dumps({**figure.summary(), "figure": figure.figure}))
                (folder / f"{figure.name}.png").write_bytes(pngs[figure.name])
            self.client.log_artifacts(run_id, str(folder), DIAGNOSTICS_DIR)

    def register(self, run_id: str, model: BatchModel, tags: Mapping[str, str]) -> int:
        """Log `model` as the run's pyfunc model and register it as a new version; returns the version."""
        from coelho.adapters.batch_pyfunc import save_batch_pyfunc

        with tempfile.TemporaryDirectory(prefix="coelho-batch-model-") as tmp:
            local = save_batch_pyfunc(Path(tmp) / MODEL_DIR, model)
            self.client.log_artifacts(run_id, str(local), MODEL_DIR)
        ensure_registered_model(self.client, self.name, self.use_case)
        version = self.client.create_model_version(self.name, source=f"runs:/{run_id}/{MODEL_DIR}", run_id=run_id,
                                                   tags=dict(tags))
        return int(version.version)

    def update_champion(self) -> int | None:
        """Point `champion` at the rule's choice among the batch versions (scored on their test blocks)."""
        rule = self.use_case.champion
        candidates = version_candidates(self.client, self.name, "coelho.test_rows")
        return point_alias(self.client, self.name, choose(candidates, rule, test_window(rule)))

    def end_run(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    # reading ------------------------------------------------------------------------------------------------
    def champion_version(self) -> int | None:
        return alias_version(self.client, self.name)

    def _model_versions(self) -> list[Any]:
        try:
            return list(self.client.search_model_versions(f"name='{self.name}'"))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                return []
            raise

    def versions(self) -> list[dict[str, Any]]:
        """Every version, newest first: version, champion, score, metric, run_id, created_at (ms)."""
        champion = self.champion_version()
        out = []
        for v in sorted(self._model_versions(), key=lambda v: -int(v.version)):
            tags = v.tags or {}
            score = tags.get("coelho.score")
            out.append({"version": int(v.version), "champion": int(v.version) == champion,
                        "score": float(score) if score not in (None, "", "None") else None,
                        "metric": tags.get("coelho.window", "").split("/", 1)[0].removeprefix("test.") or None,
                        "run_id": v.run_id, "created_at": v.creation_timestamp})
        return out

    def runs(self, max_results: int = 50) -> list[dict[str, Any]]:
        """The batch runs, newest first, with their test metrics, split, Delta version and registered version."""
        found = self.client.search_runs([self.experiment_id()],
                                        filter_string=f"tags.`coelho.training_mode` = '{TRAINING_MODE}'",
                                        order_by=["attributes.start_time DESC"], max_results=max_results)
        by_run = {v.run_id: int(v.version) for v in self._model_versions()}
        champion = self.champion_version()
        out = []
        for run in found:
            split = json.loads(run.data.tags.get("coelho.split", "{}"))
            version = by_run.get(run.info.run_id)
            delta_version = run.data.tags.get("coelho.delta_version")
            out.append({
                "run_id": run.info.run_id, "status": run.info.status, "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                "metrics": {k: v for k, v in sorted(run.data.metrics.items()) if not k.startswith(CURVE_PREFIXES)},
                "champion": version is not None and version == champion, "version": version,
                "rows": split.get("rows"), "time_range": split.get("time_range"),
                "delta_version": int(delta_version) if delta_version is not None else None,
            })
        return out

    def champion_run_id(self) -> str | None:
        version = self.champion_version()
        return None if version is None else self.client.get_model_version(self.name, str(version)).run_id

    def read_json(self, run_id: str, path: str) -> Any:
        """A JSON artifact of a batch run of this use case (UnknownRun when there is none)."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise UnknownRun(f"no run {run_id}") from None
        if run.data.tags.get("coelho.training_mode") != TRAINING_MODE or run.info.experiment_id != self.experiment_id():
            raise UnknownRun(f"run {run_id} is not a {self.use_case.key} batch run")
        with tempfile.TemporaryDirectory(prefix="coelho-artifact-") as tmp:
            try:
                local = self.client.download_artifacts(run_id, path, tmp)
            except (MlflowException, OSError):
                raise UnknownRun(f"run {run_id} has no {path}") from None
            return json.loads(Path(local).read_text())

    def load_version(self, version: int) -> tuple[BatchModel, str]:
        """Registered `version`'s model (read with `BatchModel.load`, as the pyfunc does) and its run id."""
        try:
            details = self.client.get_model_version(self.name, str(version))
        except MlflowException:
            raise UnknownVersion(f"{self.name} has no version {version}") from None
        with tempfile.TemporaryDirectory(prefix="coelho-batch-load-") as tmp:
            local = Path(self.client.download_artifacts(details.run_id, f"{MODEL_DIR}/artifacts", tmp))
            spec = next(local.glob("spec.json"))
            model_file = next(p for p in local.iterdir() if p.name.startswith("model."))
            return BatchModel.load(model_file, spec), str(details.run_id)

