"""Every manifest against its schema: built-in kinds with kubernetes-validate (Kubernetes 1.33, strict), custom
resources against the CRDs of the pinned releases (tests/support/crds.py says where each comes from), the k3d config
against k3d's schema. A kind nobody can check fails."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from coelho.dispatch.manifest import parse_kafka_sink, parse_kafka_source
from support import ROOT
from support.crds import EVENTING, K3D, PROMETHEUS_OPERATOR, SERVING, SPARK_OPERATOR, STRIMZI_VERSION

KUBERNETES = "1.33.0"  # the k3s of infra/k3d/k3d.yaml
KAFKA_BROKER_RULES = {("sources.knative.dev/v1beta1", "KafkaSource"): parse_kafka_source,
                      ("eventing.knative.dev/v1alpha1", "KafkaSink"): parse_kafka_sink}


def _builtin(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return "." not in group or group.endswith(".k8s.io")


def _k3d_schema() -> dict[str, Any]:
    return json.loads(K3D.files()[0].read_text())


def schema_problems(doc: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """What is wrong with one manifest by its schema (empty when valid)."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key == ("k3d.io/v1alpha5", "Simple"):
        validator = jsonschema.Draft7Validator(_k3d_schema())
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    if key in KAFKA_BROKER_RULES:
        try:
            KAFKA_BROKER_RULES[key](doc)
        except ValueError as exc:
            return [str(exc)]
        return []
    if key in schemas:
        validator = jsonschema.Draft7Validator(schemas[key])
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    if _builtin(key[0]):
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{key[0]} {key[1]}: no such kind in Kubernetes {KUBERNETES}"]
        except kubernetes_validate.ValidationError as exc:
            return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
        return job_problems(doc)
    return [f"{key[0]} {key[1]}: no CRD, schema or rules to check it against"]


def job_problems(doc: dict[str, Any]) -> list[str]:
    """The API server's Job rules the schema does not carry: a Job's pods restart Never or OnFailure."""
    if doc.get("kind") != "Job":
        return []
    policy = doc["spec"]["template"]["spec"].get("restartPolicy")
    return [] if policy in ("Never", "OnFailure") else [f"spec.template.spec.restartPolicy: {policy!r} in a Job"]


def test_every_manifest_matches_its_schema(manifests, schemas):
    problems = {f"{path.relative_to(ROOT)}: {doc['kind']} {doc['metadata'].get('name', '')}": errors
                for path, doc in manifests if (errors := schema_problems(doc, schemas))}
    assert problems == {}
    kinds = {doc["kind"] for _, doc in manifests}
    assert kinds >= {"Service", "JobSink", "KafkaSource", "KafkaSink", "Kafka", "KafkaNodePool", "KafkaTopic",
                     "SparkApplication", "PodMonitor", "StatefulSet", "Deployment", "Ingress", "Simple"}


def test_the_jobsinks_job_is_a_valid_kubernetes_job(manifests):
    """Offline, JobSink's dry-run of its Job cannot happen (infra/validate uses a fake client): check the Job."""
    sinks = [doc for _, doc in manifests if doc["kind"] == "JobSink"]
    assert sinks
    for sink in sinks:
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": sink["metadata"]["name"]},
               **copy.deepcopy(sink["spec"]["job"])}
        kubernetes_validate.validate(job, KUBERNETES, strict=True)
        assert job_problems(job) == []
        spec = job["spec"]
        assert spec["backoffLimit"] >= 0 and spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0


@pytest.mark.parametrize(("source", "mutate", "message"), [
    ("infra/knative/services/tfd-learn.yaml",
     lambda d: d["spec"]["template"]["spec"].update(containerConcurency=4), "'containerConcurency' was unexpected"),
    ("infra/knative/services/sql.yaml",
     lambda d: d["spec"]["template"]["spec"].update(timeoutSeconds="30"), "'30' is not of type 'integer'"),
    ("infra/data/kafka.yaml", lambda d: d["spec"].update(partition=6), "'partition' was unexpected"),
    ("infra/spark/sparkapplication.yaml",
     lambda d: d["spec"]["restartPolicy"].update(type="Sometimes"), "'Sometimes' is not one of"),
    ("infra/monitoring/podmonitors.yaml",
     lambda d: d["spec"]["podMetricsEndpoints"][0].update(portt="x"), "'portt' was unexpected"),
    ("infra/data/valkey.yaml", lambda d: d["spec"].update(replica=1), "'replica' was unexpected"),
    ("infra/data/s3.yaml", lambda d: d["spec"]["template"]["spec"].update(restartPolicy="Always"), "in a Job"),
    ("infra/k3d/k3d.yaml", lambda d: d.update(server=1), "'server' was unexpected"),
    ("eventing/knative/kafkasource-tfd.yaml", lambda d: d["spec"].update(ordering="random"), "spec.ordering"),
    ("infra/knative/ui.yaml", lambda d: d.update(apiVersion="example.io/v1"), "no CRD, schema or rules"),
])
def test_a_wrong_manifest_is_refused_naming_the_field(schemas, source, mutate, message):
    docs = list(yaml.safe_load_all((ROOT / source).read_text()))
    kind = {"infra/data/kafka.yaml": "KafkaTopic", "infra/data/s3.yaml": "Job",
            "infra/data/valkey.yaml": "StatefulSet"}.get(source)
    doc = next(d for d in docs if kind is None or d["kind"] == kind)
    assert schema_problems(doc, schemas) == []
    mutate(doc)
    assert any(message in problem for problem in schema_problems(doc, schemas))


def test_schemas_come_from_the_releases_the_cluster_installs():
    pins = dict(line.split("=", 1) for line in (ROOT / "infra" / "k3d" / "versions.env").read_text().splitlines()
                if line and not line.startswith("#"))
    minor = {SERVING: pins["KNATIVE_SERVING"], EVENTING: pins["KNATIVE_EVENTING"]}
    for module, tag in minor.items():  # Knative's Go modules v0.47.N are the releases knative-v1.20.N
        assert module.version == "v0.47." + tag.rsplit(".", 1)[1] and tag.startswith("knative-v1.20.")
    assert SPARK_OPERATOR.version == "v" + pins["SPARK_OPERATOR"]
    assert STRIMZI_VERSION == pins["STRIMZI"]
    assert pins["KUBE_PROMETHEUS_STACK"] == "88.5.3" and PROMETHEUS_OPERATOR.version == "v0.93.1"  # its operator
    assert all(pins[key].startswith("knative-v1.20.") for key in pins if key.startswith("KNATIVE_"))
    assert K3D.version >= pins["K3D_MIN_VERSION"]
