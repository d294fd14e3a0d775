"""Cross-manifest consistency: what no schema or webhook checks, because it spans several objects.

Every catalog function has exactly one Service that runs it; every sink resolves to an object that is
defined; every topic a source reads or a sink writes is a KafkaTopic; every variable a COELHO container
sets is a setting; every Secret and ConfigMap referenced exists; one image tag everywhere.

>>> settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "namespace": "coelho"},
...             "data": {"COELHO_CHECKPOINT_EVRY": "5"}}
>>> producer = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "p", "namespace": "coelho"},
...             "spec": {"template": {"spec": {"containers": [{"name": "p", "image": IMAGE,
...                      "envFrom": [{"configMapRef": {"name": "s"}}], "env": [{"name": "REDIS_URL"}]}]}}}}
>>> unknown_settings([settings, producer])
['ConfigMap coelho/s: COELHO_CHECKPOINT_EVRY is not a setting of coelho.config']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from coelho.config import ENVIRONMENT
from coelho.deploy.knative import IMAGE, IMAGE_FUNCTIONS_DIR, deployed

__all__ = [
    "Doc",
    "FRAMEWORK_VARIABLES",
    "catalog_problems",
    "consistency_problems",
    "image_problems",
    "load_documents",
    "pod_specs",
    "reference_problems",
    "script_secrets",
    "sink_problems",
    "topic_problems",
    "unknown_settings",
]

Doc = Mapping[str, Any]
#: Variables of functions-framework (and gunicorn through it) that COELHO containers may set besides settings.
FRAMEWORK_VARIABLES = frozenset({"FUNCTION_TARGET", "FUNCTION_SIGNATURE_TYPE", "FUNCTION_SOURCE", "WORKERS", "THREADS"})
#: Containers of the COELHO image running third-party programs (their variables are theirs).
FOREIGN_COMMANDS = frozenset({"mlflow"})
_SECRET_LINE = re.compile(r"^\s*ensure_secret\s+(\S+)\s+(\S+)\s+((?:.*\\\n)*.*)$", re.M)


def load_documents(paths: Iterable[Path]) -> list[Doc]:
    """The YAML documents of `paths` that are Kubernetes objects (they have apiVersion and kind)."""
    docs: list[Doc] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                docs.append(doc)
    return docs


def script_secrets(script: str) -> dict[tuple[str, str], set[str]]:
    r"""The Secrets the cluster script creates: its `ensure_secret NAMESPACE NAME KEY[=VALUE]...` lines.

    >>> line = "ensure_secret coelho db USER=x PASSWORD \\\n  'URL=pg://x:{PASSWORD}@db'"
    >>> sorted(script_secrets(line)[("coelho", "db")])
    ['PASSWORD', 'URL', 'USER']
    """
    found: dict[tuple[str, str], set[str]] = {}
    for namespace, name, keys in _SECRET_LINE.findall(script):
        words = [word.strip("'\"") for word in keys.replace("\\\n", " ").split()]
        found.setdefault((namespace, name), set()).update(word.split("=", 1)[0] for word in words)
    return found


def _label(doc: Doc) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')} {meta.get('namespace', 'default')}/{meta.get('name')}"


def _namespace(doc: Doc) -> str:
    return str((doc.get("metadata") or {}).get("namespace", "default"))


def pod_specs(doc: Doc) -> Iterator[Mapping[str, Any]]:
    """Every pod spec (or SparkApplication pod template) a manifest defines."""
    spec = doc.get("spec") or {}
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "Job", "ContainerSource") or (
        kind == "Service" and str(doc.get("apiVersion", "")).startswith("serving.knative.dev/")
    ):
        yield (spec.get("template") or {}).get("spec") or {}
    elif kind == "JobSink":
        yield ((spec.get("job") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
    elif kind == "SparkApplication":
        for role in ("driver", "executor"):
            part = spec.get(role) or {}
            yield {"containers": [{"name": role, "image": part.get("image", spec.get("image")),
                                   "env": part.get("env", []), "envFrom": part.get("envFrom", [])}]}


def _containers(doc: Doc) -> Iterator[Mapping[str, Any]]:
    for pod in pod_specs(doc):
        yield from pod.get("initContainers") or []
        yield from pod.get("containers") or []


def _ours(container: Mapping[str, Any]) -> bool:
    """A container running COELHO code (the image, not a third-party program started from it)."""
    image = str(container.get("image", ""))
    command = container.get("command") or [""]
    return image.startswith("coelho.local/") and command[0] not in FOREIGN_COMMANDS


def catalog_problems(docs: Iterable[Doc]) -> list[str]:
    """Each deployed catalog function has exactly one Knative Service with its target, signature and source."""
    services: dict[str, list[Doc]] = {}
    for doc in docs:
        if doc.get("kind") == "Service" and str(doc.get("apiVersion", "")).startswith("serving.knative.dev/"):
            services.setdefault(doc["metadata"]["name"], []).append(doc)
    problems = [f"Knative Service {name}: not a deployed function of the catalog"
                for name in sorted(set(services) - set(deployed()))]
    for name, spec in deployed().items():
        found = services.get(name, [])
        if len(found) != 1:
            problems.append(f"function {name}: {len(found)} Knative Services (expected exactly one)")
            continue
        containers = list(_containers(found[0]))
        env = {e["name"]: e.get("value") for c in containers for e in c.get("env") or []}
        want = {"FUNCTION_TARGET": spec.target, "FUNCTION_SIGNATURE_TYPE": spec.signature,
                "FUNCTION_SOURCE": f"{IMAGE_FUNCTIONS_DIR}/{spec.folder}/main.py"}
        problems += [f"Knative Service {name}: {var}={env.get(var)!r}, the catalog says {value!r}"
                     for var, value in want.items() if env.get(var) != value]
    return problems


def _destinations(doc: Doc) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = doc.get("spec") or {}
    if isinstance(spec.get("sink"), dict):
        yield "spec.sink", spec["sink"]
    delivery = spec.get("delivery") or {}
    if isinstance(delivery.get("deadLetterSink"), dict):
        yield "spec.delivery.deadLetterSink", delivery["deadLetterSink"]


def sink_problems(docs: Iterable[Doc]) -> list[str]:
    """Every sink and dead-letter sink `ref` names an object defined in the manifests."""
    docs = list(docs)
    defined = {(str(d["apiVersion"]).split("/")[0], d["kind"], _namespace(d), d["metadata"]["name"]) for d in docs}
    problems = []
    for doc in docs:
        for where, destination in _destinations(doc):
            ref = destination.get("ref")
            if not isinstance(ref, dict):
                continue
            key = (str(ref.get("apiVersion", "")).split("/")[0], ref.get("kind"),
                   ref.get("namespace", _namespace(doc)), ref.get("name"))
            if key not in defined:
                problems.append(f"{_label(doc)}: {where} names {key[1]} {key[2]}/{key[3]} ({key[0]}), "
                                "which no manifest defines")
    return problems


def topic_problems(docs: Iterable[Doc]) -> list[str]:
    """KafkaSource/KafkaSink topics are KafkaTopics, on the Strimzi cluster's bootstrap address; no unused topic."""
    docs = list(docs)
    topics = {(doc.get("spec") or {}).get("topicName") or doc["metadata"]["name"]: doc
              for doc in docs if doc["kind"] == "KafkaTopic"}
    clusters = {f"{d['metadata']['name']}-kafka-bootstrap.{_namespace(d)}:{listener['port']}"
                for d in docs if d["kind"] == "Kafka"
                for listener in (d.get("spec") or {}).get("kafka", {}).get("listeners", [])
                if not listener.get("tls")}
    problems, used = [], set()
    for doc in docs:
        spec = doc.get("spec") or {}
        if doc["kind"] == "KafkaSource":
            names = list(spec.get("topics") or [])
        elif doc["kind"] == "KafkaSink":
            names = [spec.get("topic")]
        else:
            continue
        used.update(names)
        problems += [f"{_label(doc)}: topic {name!r} has no KafkaTopic" for name in names if name not in topics]
        problems += [f"{_label(doc)}: bootstrap server {server!r} is not a plain listener of a Strimzi Kafka "
                     f"({sorted(clusters)})" for server in spec.get("bootstrapServers") or [] if server not in clusters]
    problems += [f"{_label(doc)}: topic {name!r} is read or written by no KafkaSource or KafkaSink"
                 for name, doc in topics.items() if name not in used]
    return problems


def unknown_settings(docs: Iterable[Doc]) -> list[str]:
    """Variables a COELHO container sets (its env, its ConfigMaps' keys) that are no setting of coelho.config."""
    known = {var for var, _ in ENVIRONMENT.values()} | FRAMEWORK_VARIABLES
    docs = list(docs)
    configmaps = {(_namespace(d), d["metadata"]["name"]): d for d in docs if d["kind"] == "ConfigMap"}
    used_maps: set[tuple[str, str]] = set()
    problems = []
    for doc in docs:
        for container in _containers(doc):
            if not _ours(container):
                continue
            problems += [f"{_label(doc)}: {e['name']} is not a setting of coelho.config"
                         for e in container.get("env") or [] if e["name"] not in known]
            used_maps.update((_namespace(doc), source["configMapRef"]["name"])
                             for source in container.get("envFrom") or [] if "configMapRef" in source)
    for key in sorted(used_maps & set(configmaps)):
        problems += [f"{_label(configmaps[key])}: {var} is not a setting of coelho.config"
                     for var in (configmaps[key].get("data") or {}) if var not in known]
    return problems


def reference_problems(docs: Iterable[Doc], secrets: Mapping[tuple[str, str], set[str]]) -> list[str]:
    """Every Secret and ConfigMap (and key) a container references exists: ConfigMaps in the manifests,
    Secrets among those the cluster script creates."""
    docs = list(docs)
    maps = {(_namespace(d), d["metadata"]["name"]): set(d.get("data") or {}) for d in docs if d["kind"] == "ConfigMap"}
    problems = []
    for doc in docs:
        namespace = _namespace(doc)
        for container in _containers(doc):
            refs: list[tuple[str, str, str | None]] = []
            for source in container.get("envFrom") or []:
                refs += [(kind, source[field]["name"], None) for kind, field in
                         (("Secret", "secretRef"), ("ConfigMap", "configMapRef")) if field in source]
            for var in container.get("env") or []:
                source = var.get("valueFrom") or {}
                refs += [(kind, source[field]["name"], source[field]["key"]) for kind, field in
                         (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")) if field in source]
            for kind, name, key in refs:
                present = (secrets if kind == "Secret" else maps).get((namespace, name))
                if present is None:
                    problems.append(f"{_label(doc)}: {kind} {namespace}/{name} does not exist")
                elif key is not None and key not in present:
                    problems.append(f"{_label(doc)}: {kind} {namespace}/{name} has no key {key}")
    return problems


def image_problems(docs: Iterable[Doc]) -> list[str]:
    """Every COELHO container uses the one image tag (the Spark job its sibling image with the same tag)."""
    repository, tag = IMAGE.rsplit(":", 1)
    allowed = {IMAGE, f"{repository}-spark:{tag}"}
    return [f"{_label(doc)}: image {container.get('image')!r}, expected one of {sorted(allowed)}"
            for doc in docs for container in _containers(doc)
            if str(container.get("image", "")).startswith("coelho.local/") and container.get("image") not in allowed]


def consistency_problems(docs: Iterable[Doc], secrets: Mapping[tuple[str, str], set[str]]) -> list[str]:
    """Every cross-manifest problem of `docs`."""
    docs = list(docs)
    return (catalog_problems(docs) + sink_problems(docs) + topic_problems(docs)
            + unknown_settings(docs) + reference_problems(docs, secrets) + image_problems(docs))
