"""KafkaSource and KafkaSink manifests: parsed, validated like Knative's webhook, defaulted like its controller.

The YAML files in `eventing/knative/` are what Knative applies and what the local dispatcher
reads, so both see one configuration. Validation names the offending field.

Examples
--------
>>> source = parse_kafka_source({
...     "apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
...     "metadata": {"name": "tfd-events", "namespace": "coelho"},
...     "spec": {"bootstrapServers": ["k:9092"], "topics": ["t"], "consumerGroup": "g",
...              "delivery": {"retry": 3, "backoffDelay": "PT0.5S"},
...              "sink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "f"}}}})
>>> source.delivery.backoff_policy, source.delivery.backoff_delay, source.ordering, source.initial_offset
('exponential', 0.5, 'ordered', 'latest')
>>> parse_duration("PT1M30.5S")
90.5
>>> parse_kafka_source({"kind": "KafkaSource", "metadata": {"name": "x"}, "spec": {"topics": []}})
Traceback (most recent call last):
...
coelho.dispatch.manifest.ManifestError: KafkaSource x: apiVersion: is required; spec.bootstrapServers: is required; \
spec.topics: must be a non-empty list of strings; spec.consumerGroup: must be set explicitly ...; spec.sink: is required
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "DeliverySpec",
    "isolated_copy",
    "Destination",
    "KafkaSink",
    "KafkaSource",
    "ManifestError",
    "load_manifests",
    "parse_duration",
    "parse_kafka_sink",
    "parse_kafka_source",
]

SOURCE_API_VERSIONS = ("sources.knative.dev/v1beta1", "sources.knative.dev/v1")
SINK_API_VERSIONS = ("eventing.knative.dev/v1alpha1",)
#: The fields the Go types accept (eventing-kafka-broker knative-v1.20: KafkaSourceSpec with the inline
#: KafkaAuthSpec and duck SourceSpec, KafkaSinkSpec; eventing duck/v1 DeliverySpec). kubectl applies with
#: strict field validation, so the API server refuses any other field: so do we.
SOURCE_FIELDS = frozenset({"consumers", "bootstrapServers", "net", "topics", "consumerGroup", "initialOffset",
                           "delivery", "ordering", "sink", "ceOverrides"})
SINK_FIELDS = frozenset({"topic", "numPartitions", "replicationFactor", "bootstrapServers", "contentMode", "auth"})
DELIVERY_FIELDS = frozenset({"deadLetterSink", "retry", "timeout", "backoffPolicy", "backoffDelay", "retryAfterMax",
                             "format"})
#: Per-attempt timeout when `delivery.timeout` is unset (WebClientCloudEventSender.DEFAULT_TIMEOUT_MS).
DEFAULT_TIMEOUT_S = 600.0
#: Back-off delay when `delivery` is set without `backoffDelay` (the operator's DEFAULT_BACKOFF_DELAY_MS).
DEFAULT_BACKOFF_DELAY_S = 0.3

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class ManifestError(ValueError):
    """A manifest Knative would reject; the message names each bad field."""


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration such as `PT0.3S` or `PT1M`; ValueError when malformed."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not an ISO-8601 duration such as PT0.5S")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return parts.get("days", 0) * 86400 + parts.get("hours", 0) * 3600 + parts.get("minutes", 0) * 60 + parts.get(
        "seconds", 0
    )


@dataclass(frozen=True)
class Destination:
    """A duck-typed Knative Destination: a `ref` to an addressable, or a `uri`."""

    uri: str | None = None
    kind: str | None = None
    name: str | None = None
    api_version: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class DeliverySpec:
    """Retry, back-off, timeout and dead-letter sink, with Knative's defaults filled in."""

    retry: int = 0
    backoff_policy: Literal["linear", "exponential"] = "exponential"
    backoff_delay: float = DEFAULT_BACKOFF_DELAY_S
    timeout: float = DEFAULT_TIMEOUT_S
    dead_letter_sink: Destination | None = None

    def backoff(self, attempt: int) -> float:
        """Wait before retry number `attempt` (1-based): delay × n (linear) or delay × 2^n (exponential)."""
        if self.backoff_policy == "linear":
            return self.backoff_delay * attempt
        return self.backoff_delay * 2**attempt


#: `spec.delivery` absent: what the KafkaSource controller sets (source.go).
CONTROLLER_DEFAULT_DELIVERY = DeliverySpec(retry=10, backoff_policy="exponential", backoff_delay=0.3, timeout=600.0)


@dataclass(frozen=True)
class KafkaSource:
    """The parts of a KafkaSource the dispatcher acts on."""

    name: str
    namespace: str
    bootstrap_servers: tuple[str, ...]
    topics: tuple[str, ...]
    consumer_group: str
    initial_offset: Literal["earliest", "latest"]
    ordering: Literal["ordered", "unordered"]
    delivery: DeliverySpec
    sink: Destination
    key_type: str = "string"
    ce_overrides: Mapping[str, str] | None = None

    @property
    def source_attribute(self) -> str:
        """CloudEvent `source` of wrapped records, without the `#<topic>` suffix."""
        return f"/apis/v1/namespaces/{self.namespace}/kafkasources/{self.name}"


@dataclass(frozen=True)
class KafkaSink:
    """A KafkaSink: CloudEvents posted to it are written to `topic`."""

    name: str
    namespace: str
    topic: str
    bootstrap_servers: tuple[str, ...]
    content_mode: Literal["binary", "structured"] = "binary"


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(f"{field}: {message}")


def parse_kafka_source(doc: Mapping[str, Any]) -> KafkaSource:
    """Validate and default a KafkaSource document; raise ManifestError naming every bad field."""
    problems = _Problems()
    metadata, spec = _header(doc, "KafkaSource", SOURCE_API_VERSIONS, problems)
    _known_fields(spec, SOURCE_FIELDS, "spec", problems)
    servers = _string_list(spec, "bootstrapServers", problems)
    topics = _string_list(spec, "topics", problems)
    group = spec.get("consumerGroup")
    if not isinstance(group, str) or not group:
        problems.add("spec.consumerGroup", "must be set explicitly (a generated group loses offsets on re-create)")
    initial = _enum(spec, "initialOffset", ("earliest", "latest"), "latest", problems)
    ordering = _enum(spec, "ordering", ("ordered", "unordered"), "ordered", problems)
    delivery = _delivery(spec.get("delivery"), problems)
    sink = _destination(spec.get("sink"), "spec.sink", problems)
    overrides = (spec.get("ceOverrides") or {}).get("extensions") if isinstance(spec.get("ceOverrides"), dict) else None
    key_type = (metadata.get("labels") or {}).get("kafkasources.sources.knative.dev/key-type", "string")
    if key_type not in ("string", "int", "float", "byte-array"):
        problems.add("metadata.labels[kafkasources.sources.knative.dev/key-type]",
                     "must be one of string, int, float, byte-array")
    name = str(metadata.get("name", "?"))
    if problems.items:
        raise ManifestError(f"KafkaSource {name}: " + "; ".join(problems.items))
    assert delivery is not None and sink is not None
    return KafkaSource(
        name=name, namespace=str(metadata.get("namespace", "default")), bootstrap_servers=tuple(servers),
        topics=tuple(topics), consumer_group=str(group), initial_offset=initial, ordering=ordering,  # type: ignore[arg-type]
        delivery=delivery, sink=sink, key_type=key_type, ce_overrides=overrides,
    )


def parse_kafka_sink(doc: Mapping[str, Any]) -> KafkaSink:
    """Validate a KafkaSink document: the webhook's rules (kafka_sink_validation.go) and known fields only.

    >>> parse_kafka_sink({"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "KafkaSink",
    ...                   "metadata": {"name": "dl"}, "spec": {"topic": "t", "bootstrapServers": ["k:9092"],
    ...                   "numPartitions": 0, "auth": {"secret": {"ref": {}}}, "partitions": 3}})
    Traceback (most recent call last):
    ...
    coelho.dispatch.manifest.ManifestError: KafkaSink dl: spec.partitions: unknown field; spec.numPartitions: \
must be an integer > 0; spec.auth.secret.ref.name: is required when auth is set
    """
    problems = _Problems()
    metadata, spec = _header(doc, "KafkaSink", SINK_API_VERSIONS, problems)
    _known_fields(spec, SINK_FIELDS, "spec", problems)
    servers = _string_list(spec, "bootstrapServers", problems)
    topic = spec.get("topic")
    if not isinstance(topic, str) or not topic:
        problems.add("spec.topic", "is required")
    mode = _enum(spec, "contentMode", ("binary", "structured"), "binary", problems)
    for field in ("numPartitions", "replicationFactor"):
        value = spec.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            problems.add(f"spec.{field}", "must be an integer > 0")
    auth = spec.get("auth")
    if auth is not None:
        ref = ((auth.get("secret") or {}).get("ref") or {}) if isinstance(auth, dict) else {}
        if not isinstance(ref, dict) or not ref.get("name"):
            problems.add("spec.auth.secret.ref.name", "is required when auth is set")
    name = str(metadata.get("name", "?"))
    if problems.items:
        raise ManifestError(f"KafkaSink {name}: " + "; ".join(problems.items))
    return KafkaSink(name, str(metadata.get("namespace", "default")), str(topic), tuple(servers), mode)  # type: ignore[arg-type]


def load_manifests(folder: Path) -> tuple[list[KafkaSource], dict[str, KafkaSink]]:
    """Every KafkaSource and KafkaSink in the YAML files of `folder` (other kinds are ignored)."""
    sources: list[KafkaSource] = []
    sinks: dict[str, KafkaSink] = {}
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            try:
                if doc.get("kind") == "KafkaSource":
                    sources.append(parse_kafka_source(doc))
                elif doc.get("kind") == "KafkaSink":
                    sink = parse_kafka_sink(doc)
                    sinks[sink.name] = sink
            except ManifestError as exc:
                raise ManifestError(f"{path}: {exc}") from None
    return sources, sinks


def isolated_copy(manifests: Path, folder: Path, key: str, tag: str = "") -> tuple[Path, str, str]:
    """Copy `key`'s KafkaSource and dead-letter KafkaSink into `folder` under unique topic and group names.

    For tests and benchmarks that share one broker: the delivery settings stay the ones Knative
    applies. Returns (folder, topic, dead-letter topic).
    """
    suffix = f"{tag}-{uuid.uuid4().hex[:8]}" if tag else uuid.uuid4().hex[:8]
    folder.mkdir(parents=True, exist_ok=True)
    source = yaml.safe_load((manifests / f"kafkasource-{key}.yaml").read_text())
    sink = yaml.safe_load((manifests / f"kafkasink-{key}-dead-letter.yaml").read_text())
    topic = f"{source['spec']['topics'][0]}-{suffix}"
    source["spec"]["topics"] = [topic]
    source["spec"]["consumerGroup"] += f"-{suffix}"
    sink["spec"]["topic"] = f"{topic}.dead-letter"
    (folder / f"kafkasource-{key}.yaml").write_text(yaml.safe_dump(source))
    (folder / f"kafkasink-{key}-dead-letter.yaml").write_text(yaml.safe_dump(sink))
    return folder, topic, sink["spec"]["topic"]


def _header(
    doc: Mapping[str, Any], kind: str, versions: tuple[str, ...], problems: _Problems
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if doc.get("apiVersion") not in versions:
        problems.add("apiVersion", "is required" if "apiVersion" not in doc else f"must be one of {list(versions)}")
    if doc.get("kind") != kind:
        problems.add("kind", f"must be {kind}")
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    if not metadata.get("name"):
        problems.add("metadata.name", "is required")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        problems.add("spec", "is required")
        spec = {}
    return metadata, spec


def _known_fields(spec: Mapping[str, Any], allowed: frozenset[str], path: str, problems: _Problems) -> None:
    for field in spec:
        if field not in allowed:
            problems.add(f"{path}.{field}", "unknown field")


def _string_list(spec: Mapping[str, Any], name: str, problems: _Problems) -> list[str]:
    value = spec.get(name)
    if value is None:
        problems.add(f"spec.{name}", "is required")
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        problems.add(f"spec.{name}", "must be a non-empty list of strings")
        return []
    return value


def _enum(spec: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str, problems: _Problems) -> str:
    value = spec.get(name, default)
    if value not in allowed:
        problems.add(f"spec.{name}", f"must be one of {list(allowed)}, got {value!r}")
        return default
    return str(value)


def _delivery(raw: Any, problems: _Problems) -> DeliverySpec | None:
    if raw is None:
        return CONTROLLER_DEFAULT_DELIVERY
    if not isinstance(raw, dict):
        problems.add("spec.delivery", "must be an object")
        return None
    _known_fields(raw, DELIVERY_FIELDS, "spec.delivery", problems)
    retry = raw.get("retry", 0)
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
        problems.add("spec.delivery.retry", "must be an integer >= 0")
        retry = 0
    policy = raw.get("backoffPolicy", "exponential")
    if policy not in ("linear", "exponential"):
        problems.add("spec.delivery.backoffPolicy", f"must be linear or exponential, got {policy!r}")
    seconds: dict[str, float] = {}
    for field, default in (("backoffDelay", DEFAULT_BACKOFF_DELAY_S), ("timeout", DEFAULT_TIMEOUT_S)):
        try:
            seconds[field] = parse_duration(raw[field]) if field in raw else default
        except ValueError as exc:
            problems.add(f"spec.delivery.{field}", str(exc))
    dls = None
    if "deadLetterSink" in raw:
        dls = _destination(raw["deadLetterSink"], "spec.delivery.deadLetterSink", problems)
    if problems.items:
        return None
    return DeliverySpec(retry, policy, seconds["backoffDelay"], seconds["timeout"], dls)


def _destination(raw: Any, path: str, problems: _Problems) -> Destination | None:
    if raw is None:
        problems.add(path, "is required")
        return None
    if not isinstance(raw, dict) or ("ref" not in raw and "uri" not in raw):
        problems.add(path, "must have a ref or a uri")
        return None
    ref = raw.get("ref")
    if ref is not None:
        if not isinstance(ref, dict) or not all(isinstance(ref.get(k), str) for k in ("apiVersion", "kind", "name")):
            problems.add(f"{path}.ref", "needs apiVersion, kind and name")
            return None
        return Destination(kind=ref["kind"], name=ref["name"], api_version=ref["apiVersion"],
                           namespace=ref.get("namespace"), uri=raw.get("uri"))
    uri = raw.get("uri")
    if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
        problems.add(f"{path}.uri", "must be an absolute http(s) URL")
        return None
    return Destination(uri=uri)
