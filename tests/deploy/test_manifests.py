"""The Knative Services agree with the catalog, and the manifests agree with each other (offline, no cluster)."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from typing import Any

import pytest

from coelho.deploy.checks import (
    catalog_problems,
    consistency_problems,
    image_problems,
    load_documents,
    reference_problems,
    script_secrets,
    sink_problems,
    topic_problems,
    unknown_settings,
)
from coelho.deploy.knative import deployed, service_manifest, stale, write
from coelho.deploy.policy import POLICIES
from coelho.runtime.catalog import FUNCTIONS
from support import ROOT
from support.crds import manifest_files

SERVICES = ROOT / "infra" / "knative" / "services"
SCRIPT = ROOT / "infra" / "k3d" / "cluster.sh"


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return load_documents(manifest_files())


@pytest.fixture(scope="module")
def secrets() -> dict[tuple[str, str], set[str]]:
    return script_secrets(SCRIPT.read_text())


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_committed_services_are_what_the_catalog_generates():
    assert stale(SERVICES) == [], "run `coelho manifests write` and commit infra/knative/services/"


def test_generation_writes_one_file_per_deployed_function_and_removes_others(tmp_path):
    (tmp_path / "gone.yaml").write_text("kind: Service\n")
    written = write(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{name}.yaml" for name in deployed())
    assert not (tmp_path / "gone.yaml").exists() and stale(tmp_path) == []
    (tmp_path / "sql.yaml").write_text((tmp_path / "sql.yaml").read_text().replace("'3'", "'4'"))
    assert stale(tmp_path) == ["sql.yaml: differs from the generated Service"]


def test_every_role_has_a_policy_and_baselines_get_no_service():
    assert {spec.role for spec in FUNCTIONS} <= set(POLICIES)
    assert {"train", "batch-predict"} <= set(POLICIES)  # the batch functions' roles (contracts.md)
    assert {spec.name for spec in FUNCTIONS if spec.role == "baseline"}.isdisjoint(deployed())
    assert set(deployed()) == {spec.name for spec in FUNCTIONS if spec.role != "baseline"}


def _revision(name: str) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    service = service_manifest(deployed()[name])
    template = service["spec"]["template"]
    return template["metadata"]["annotations"], template["spec"], service["metadata"]["labels"]


def test_role_policy_as_the_issue_asks():
    for name, spec in deployed().items():
        annotations, revision, labels = _revision(name)
        scale = (int(annotations["autoscaling.knative.dev/min-scale"]),
                 int(annotations["autoscaling.knative.dev/max-scale"]))
        private = labels.get("networking.knative.dev/visibility") == "cluster-local"
        if spec.role == "learn":  # a learner's clean stop fits the grace period; may scale to zero, with a delay
            assert revision["timeoutSeconds"] >= 30 and scale == (0, 1) and private
            assert "autoscaling.knative.dev/scale-down-delay" in annotations
        if spec.role in ("predict", "query", "batch-predict"):
            assert scale[0] == 0
        if spec.role == "sink":
            assert scale == (1, 1) and private
        if spec.role == "query":
            assert private
        if spec.role == "predict":
            assert not private  # users and the UI call them
        container = revision["containers"][0]
        assert "PORT" not in {e["name"] for e in container["env"]}  # Knative reserves it
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["securityContext"]["runAsNonRoot"] is True


def test_the_repository_is_consistent(docs, secrets):
    assert consistency_problems(docs, secrets) == []


def test_a_function_without_its_service_or_with_another_target_is_reported(docs):
    without = [d for d in docs if not (d["kind"] == "Service" and d["metadata"]["name"] == "tfd-learn")]
    assert catalog_problems(without) == ["function tfd-learn: 0 Knative Services (expected exactly one)"]
    changed = copy.deepcopy(docs)
    env = _find(changed, "Service", "sql")["spec"]["template"]["spec"]["containers"][0]["env"]
    next(e for e in env if e["name"] == "FUNCTION_TARGET")["value"] = "sequel"
    assert catalog_problems(changed) == ["Knative Service sql: FUNCTION_TARGET='sequel', the catalog says 'sql'"]


def test_a_sink_that_names_nothing_is_reported(docs):
    changed = copy.deepcopy(docs)
    _find(changed, "KafkaSource", "tfd-events")["spec"]["sink"]["ref"]["name"] = "tfd-learner"
    assert sink_problems(changed) == [
        "KafkaSource coelho/tfd-events: spec.sink names Service coelho/tfd-learner (serving.knative.dev), "
        "which no manifest defines"]


def test_topics_must_be_kafka_topics(docs):
    changed = copy.deepcopy(docs)
    _find(changed, "KafkaSink", "eta-dead-letter")["spec"]["topic"] = "eta.dlq"
    problems = topic_problems(changed)
    assert "KafkaSink coelho/eta-dead-letter: topic 'eta.dlq' has no KafkaTopic" in problems
    assert any("'estimated_time_of_arrival.dead-letter' is read or written by no" in p for p in problems)


def test_unknown_settings_missing_secrets_and_other_tags_are_reported(docs, secrets):
    changed = copy.deepcopy(docs)
    producer = _find(changed, "Deployment", "producer-eta")["spec"]["template"]["spec"]["containers"][0]
    producer["env"] = [{"name": "COELHO_CHECKPOINT_EVRY", "value": "10"},
                       {"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "coelho-valkey", "key": "URL"}}}]
    producer["image"] = "coelho.local/coelho-realtime:latest"
    assert unknown_settings(changed) == [
        "Deployment coelho/producer-eta: COELHO_CHECKPOINT_EVRY is not a setting of coelho.config"]
    assert reference_problems(changed, secrets) == [
        "Deployment coelho/producer-eta: Secret coelho/coelho-valkey has no key URL"]
    assert reference_problems(docs, {}) != [] and "coelho-s3" in " ".join(reference_problems(docs, {}))
    assert len(image_problems(changed)) == 1


def test_cli_check_passes_on_the_repository_and_names_a_stale_file(tmp_path):
    command = [sys.executable, "-m", "coelho.cli", "manifests", "check"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shutil.copytree(SERVICES, tmp_path / "services")
    (tmp_path / "services" / "tfd-predict.yaml").unlink()
    done = subprocess.run([*command, "--folder", str(tmp_path / "services")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "tfd-predict.yaml: missing" in done.stderr
