"""The CRDs and config schemas of the releases `make cluster` installs, fetched at test time (never committed).

Where each comes from (all pinned to the versions of infra/k3d/versions.env, checked by tests/deploy):

- Knative Serving (Service, ...): Go module knative.dev/serving v0.47.1 (= knative-v1.20.1),
  config/core/300-resources/;
- Knative Eventing (JobSink, PingSource, SinkBinding, ...): knative.dev/eventing v0.47.0 (= knative-v1.20.0),
  config/core/resources/;
- SparkApplication: github.com/kubeflow/spark-operator/v2 v2.5.2, charts/spark-operator-chart/crds/;
- PodMonitor, ServiceMonitor, PrometheusRule, ...: github.com/prometheus-operator/prometheus-operator v0.93.1 (the
  operator of kube-prometheus-stack 88.5.3), example/prometheus-operator-crd/;
- k3d's config (Simple): github.com/k3d-io/k3d/v5 v5.8.3, pkg/config/v1alpha5/schema.json;
- Strimzi (Kafka, KafkaNodePool, KafkaTopic): Maven io.strimzi:api and io.strimzi:crd-generator 1.2.0, generated as
  the release build generates them.

Go modules come through the Go module proxy with `go mod download` (the go command checks each zip against the
checksum database; the `h1:` sums below must match too) into `.cache/go/mod`. Strimzi publishes no CRD artefact on
Maven Central, but its release CRDs are generated from the API classes of `io.strimzi:api` by `io.strimzi:crd-generator`
(both on Maven Central; their sha256 are pinned below): the output is byte-identical to the release's
`packaging/install/cluster-operator/04x-Crd-*.yaml`. The generator needs Java 21+ (a JDK under /usr/lib/jvm).
KafkaSource and KafkaSink (eventing-kafka-broker) are not on any registry reachable here: their rules live in
`coelho.dispatch.manifest` (webhook rules, strict fields).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coelho.adapters.maven import fetch_jars
from support import ROOT

CACHE = ROOT / ".cache"
GO_ENV = {"GOMODCACHE": str(CACHE / "go" / "mod"), "GOCACHE": str(CACHE / "go" / "build"), "GOFLAGS": "-modcacherw"}


@dataclass(frozen=True)
class GoModule:
    """A Go module zip holding CRDs (or a schema) under `folder`."""

    path: str
    version: str
    h1: str
    folder: str
    pattern: str = "*.yaml"

    def files(self) -> list[Path]:
        """Download the module once (verified) and return its matching files."""
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"{self.path}@{self.version}"], capture_output=True, text=True,
            env={**os.environ, **GO_ENV}, cwd=CACHE, timeout=600,
        )
        info = json.loads(out.stdout or "{}")
        if out.returncode != 0 or info.get("Error"):
            raise RuntimeError(f"go mod download {self.path}@{self.version}: {info.get('Error') or out.stderr}")
        if info["Sum"] != self.h1:
            raise RuntimeError(f"{self.path}@{self.version}: sum {info['Sum']}, pinned {self.h1}")
        return sorted((Path(info["Dir"]) / self.folder).glob(self.pattern))


SERVING = GoModule("knative.dev/serving", "v0.47.1", "h1:fpk2cboB2A1dksobLliXZhi8GBFyVhubEt73YL87ITM=",
                   "config/core/300-resources")
EVENTING = GoModule("knative.dev/eventing", "v0.47.0", "h1:FfM1aS7iBn9o0v7xqIBEWcR4XZ8Ny7YyFPAOyLEgMok=",
                    "config/core/resources")
SPARK_OPERATOR = GoModule("github.com/kubeflow/spark-operator/v2", "v2.5.2",
                          "h1:6nX2UhwSfnYi1mtwczgFfJTMeLSL/1ajTvkFe8R7Vdc=", "charts/spark-operator-chart/crds")
PROMETHEUS_OPERATOR = GoModule("github.com/prometheus-operator/prometheus-operator", "v0.93.1",
                               "h1:4Juk8v93RdG1DSGD/mGp+SeQKPmnlLIj2iq3blLZgFY=", "example/prometheus-operator-crd")
K3D = GoModule("github.com/k3d-io/k3d/v5", "v5.8.3", "h1:TRgPQNEV48b2PYXfus2F7fPepE7BKub4erNkY17K8Zs=",
               "pkg/config/v1alpha5", "schema.json")
GO_MODULES = (SERVING, EVENTING, SPARK_OPERATOR, PROMETHEUS_OPERATOR)

STRIMZI_VERSION = "1.2.0"
STRIMZI_POM = ROOT / "tests" / "support" / "strimzi" / "pom.xml"
STRIMZI_JARS = {
    "api-1.2.0.jar": "566961ae5e5646a001ae91312beda5cba3a5d467e740e205e1b761754335fe4e",
    "crd-generator-1.2.0.jar": "76bb2430e702a1e6a24c071d26c865d5e9572cbc630d176d3b912033ae23ed00",
}
#: The CRDs the cluster uses, as the release build generates them (api/pom.xml, generate-crd-co-install-v1).
STRIMZI_CRDS = {
    "io.strimzi.api.kafka.model.kafka.Kafka": "040-Crd-kafka.yaml",
    "io.strimzi.api.kafka.model.topic.KafkaTopic": "043-Crd-kafkatopic.yaml",
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool": "045-Crd-kafkanodepool.yaml",
}


def java_21() -> Path:
    """A java binary of version 21 or newer (Strimzi's generator is built for Java 21)."""
    candidates = [Path(p) / "bin" / "java" for p in sorted(Path("/usr/lib/jvm").glob("*"))]
    for java in candidates + [Path(shutil.which("java") or "/nonexistent")]:
        if not java.exists():
            continue
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
        match = re.search(r'version "(\d+)', out)
        if match and int(match.group(1)) >= 21:
            return java
    raise RuntimeError("Strimzi's CRD generator needs Java 21+: install a JDK 21 (e.g. Temurin) under /usr/lib/jvm")


def strimzi_crds() -> list[Path]:
    """Strimzi's CRDs of the pinned release, generated once into .cache/crds/strimzi-<version>/."""
    folder = CACHE / "crds" / f"strimzi-{STRIMZI_VERSION}"
    wanted = [folder / name for name in STRIMZI_CRDS.values()]
    lock = CACHE / "crds" / ".strimzi.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if all(path.exists() for path in wanted):
            return wanted
        jars = fetch_jars(STRIMZI_POM, CACHE / f"strimzi-jars-{STRIMZI_VERSION}", expect="crd-generator-*.jar",
                          cache_dir=CACHE)
        for name, digest in STRIMZI_JARS.items():
            actual = hashlib.sha256((jars / name).read_bytes()).hexdigest()
            if actual != digest:
                raise RuntimeError(f"{name}: sha256 {actual}, pinned {digest}")
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        subprocess.run(
            [str(java_21()), "-cp", f"{jars}/*", "io.strimzi.crdgenerator.CrdGenerator",
             "--label", "app:strimzi", "--label", "strimzi.io/crd-install:true", "--target-kube", "1.16+",
             "--crd-api-version", "v1", "--api-versions", "v1", "--storage-version", "v1", "--yaml",
             *(f"{cls}={staging / name}" for cls, name in STRIMZI_CRDS.items())],
            check=True, capture_output=True, timeout=300,
        )
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return wanted


def crd_files() -> list[Path]:
    """Every CRD file of the pinned releases."""
    return [path for module in GO_MODULES for path in module.files()] + strimzi_crds()


class _CrdLoader(yaml.SafeLoader):
    """YAML 1.1's `=` (the "value" type, e.g. an enum of relabelling actions) is plain text to Kubernetes."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", yaml.SafeLoader.construct_scalar)


def crd_schemas(files: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → strict JSON schema, for every served version of every CRD in `files`."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in files:
        for doc in yaml.load_all(path.read_text(), Loader=_CrdLoader):  # noqa: S506 - a SafeLoader
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", True) or "schema" not in version:
                    continue
                root = dict(version["schema"]["openAPIV3Schema"])
                # The API server accepts these at the root whether the CRD lists them or not (Knative's do not).
                root["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                      "metadata": {"type": "object"}, **root.get("properties", {})}
                schema = strict(root)
                schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return schemas


def strict(schema: Any) -> Any:
    """An OpenAPI v3 (structural) schema as JSON Schema that refuses unknown fields, as the API server's strict
    field validation does: `additionalProperties: false` wherever properties are listed and unknown fields are not
    preserved; int-or-string and nullable mapped to JSON Schema types.

    >>> strict({"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": True}}})
    {'type': 'object', 'properties': {'a': {'type': ['integer', 'string']}}, 'additionalProperties': False}
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()
           if not key.startswith("x-kubernetes-") and key not in ("nullable", "format", "description")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def manifest_files() -> Iterator[Path]:
    """Every YAML file `make cluster` applies or reads: infra/ and eventing/knative/ (Helm values excepted)."""
    for path in sorted([*(ROOT / "infra").rglob("*.yaml"), *(ROOT / "eventing" / "knative").glob("*.yaml")]):
        if not path.name.endswith("-values.yaml"):
            yield path
