"""Knative's own admission rules over every manifest, offline: infra/validate, built against knative.dev/serving
v0.47.1 and knative.dev/eventing v0.47.0 (Knative 1.20), with the cluster's config-defaults/-features/-autoscaler."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from support import ROOT

KNATIVE_CONFIG = ROOT / "infra" / "knative" / "config" / "knative-config.yaml"
INVALID = Path(__file__).parent / "fixtures" / "knative-invalid.yaml"
KNATIVE_KINDS = {("serving.knative.dev/v1", "Service"), ("sinks.knative.dev/v1alpha1", "JobSink"),
                 ("sources.knative.dev/v1", "SinkBinding"), ("sources.knative.dev/v1", "ContainerSource"),
                 ("sources.knative.dev/v1", "PingSource")}


def _validate(validator: Path, files: list[Path], config: Path = KNATIVE_CONFIG) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run([str(validator), "--config", str(config), "--namespace", "coelho", *map(str, files)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_every_knative_object_passes_the_webhooks(validator, manifests):
    files = sorted({path for path, _ in manifests})
    code, reports = _validate(validator, files)
    checked = {(r["apiVersion"], r["kind"], r["name"]) for r in reports if r["checked"]}
    expected = {(d["apiVersion"], d["kind"], d["metadata"]["name"]) for _, d in manifests
                if (d["apiVersion"], d["kind"]) in KNATIVE_KINDS}
    assert expected and checked == expected
    assert {kind for _, kind, _ in checked} >= {"Service", "JobSink", "PingSource"}
    errors = {f"{r['kind']} {r['name']}": r["errors"] for r in reports if r["errors"]}
    assert code == 0 and errors == {}
    for report in reports:
        for warning in report["warnings"]:
            print(f"warning: {report['kind']} {report['name']}: {warning}")


def test_each_invalid_fixture_is_refused_with_knatives_reason(validator):
    code, reports = _validate(validator, [INVALID])
    expected = {doc["metadata"]["name"]: doc["metadata"]["annotations"]["coelho.io/expect-error"]
                for doc in yaml.safe_load_all(INVALID.read_text())}
    assert code == 1 and [r["name"] for r in reports] == list(expected)
    for report in reports:
        assert any(expected[report["name"]] in error for error in report["errors"]), report


def test_the_clusters_configuration_is_the_context(validator, tmp_path):
    """A learner's 60 s timeout passes with our config-defaults and fails under a cluster allowing 30 s."""
    docs = list(yaml.safe_load_all(KNATIVE_CONFIG.read_text()))
    for doc in docs:
        if doc["metadata"]["name"] == "config-defaults":
            doc["data"]["max-revision-timeout-seconds"] = "30"
            doc["data"]["revision-timeout-seconds"] = "30"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump_all(docs))
    learner = ROOT / "infra" / "knative" / "services" / "tfd-learn.yaml"
    assert _validate(validator, [learner])[0] == 0
    code, reports = _validate(validator, [learner], config)
    assert code == 1 and "expected 0 <= 60 <= 30: spec.template.spec.timeoutSeconds" in reports[0]["errors"]
