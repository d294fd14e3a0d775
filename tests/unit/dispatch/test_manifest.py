"""KafkaSource/KafkaSink manifests: the repo's own load, and bad ones are refused naming the field."""

from __future__ import annotations

import copy

import pytest
import yaml

from coelho.dispatch.manifest import (
    CONTROLLER_DEFAULT_DELIVERY,
    DeliverySpec,
    ManifestError,
    load_manifests,
    parse_duration,
    parse_kafka_sink,
    parse_kafka_source,
)
from support import ROOT

FOLDER = ROOT / "eventing" / "knative"


def _tfd_doc() -> dict:
    return yaml.safe_load((FOLDER / "kafkasource-tfd.yaml").read_text())


def test_repository_manifests_load_with_explicit_delivery():
    sources, sinks = load_manifests(FOLDER)
    assert sorted(s.name for s in sources) == [
        "ecci-delta-sink", "ecci-events", "eta-delta-sink", "eta-events", "tfd-delta-sink", "tfd-events"]
    for source in sources:
        assert source.consumer_group.startswith("coelho-") and source.initial_offset == "earliest"
        assert source.delivery.retry > 0
        dls = source.delivery.dead_letter_sink
        assert dls is not None and dls.kind == "KafkaSink" and dls.name in sinks
        assert sinks[dls.name].topic == source.topics[0] + ".dead-letter"
        assert source.sink.kind == "Service"
        if source.name.endswith("-events"):  # the learners need order; the Delta tables do not
            assert source.ordering == "ordered" and source.sink.name == source.name.replace("-events", "-learn")
        else:
            assert source.ordering == "unordered" and source.sink.name == "delta-sink"
    groups = [source.consumer_group for source in sources]
    assert len(set(groups)) == len(groups)  # each sink sees every event


@pytest.mark.parametrize(("path", "value", "field"), [
    (("spec", "bootstrapServers"), None, "spec.bootstrapServers"),
    (("spec", "topics"), [], "spec.topics"),
    (("spec", "consumerGroup"), "", "spec.consumerGroup"),
    (("spec", "initialOffset"), "newest", "spec.initialOffset"),
    (("spec", "ordering"), "random", "spec.ordering"),
    (("spec", "delivery", "backoffPolicy"), "fibonacci", "spec.delivery.backoffPolicy"),
    (("spec", "delivery", "backoffDelay"), "0.2s", "spec.delivery.backoffDelay"),
    (("spec", "delivery", "timeout"), "PT", "spec.delivery.timeout"),
    (("spec", "delivery", "retry"), -1, "spec.delivery.retry"),
    (("spec", "sink"), {"ref": {"kind": "Service"}}, "spec.sink.ref"),
    (("apiVersion",), "sources.knative.dev/v1alpha1", "apiVersion"),
])
def test_bad_field_is_named(path, value, field):
    doc = copy.deepcopy(_tfd_doc())
    target = doc
    for part in path[:-1]:
        target = target[part]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(ManifestError, match=rf"KafkaSource tfd-events: .*{field.replace('.', '[.]')}"):
        parse_kafka_source(doc)


def test_unknown_fields_are_refused_as_kubectl_strict_validation_would():
    doc = _tfd_doc()
    doc["spec"]["consumerGroupp"] = "x"
    doc["spec"]["delivery"]["retries"] = 3
    with pytest.raises(ManifestError, match=r"spec[.]consumerGroupp: unknown field.*spec[.]delivery[.]retries: "):
        parse_kafka_source(doc)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("topic", "", "spec.topic: is required"),
    ("bootstrapServers", [], "spec.bootstrapServers: must be a non-empty list"),
    ("contentMode", "avro", "spec.contentMode: must be one of"),
    ("numPartitions", 0, "spec.numPartitions: must be an integer > 0"),
    ("replicationFactor", -1, "spec.replicationFactor: must be an integer > 0"),
    ("auth", {"secret": {"ref": {"name": ""}}}, "spec.auth.secret.ref.name: is required"),
    ("topics", ["t"], "spec.topics: unknown field"),
])
def test_kafka_sink_rules_of_the_webhook(field, value, message):
    doc = yaml.safe_load((FOLDER / "kafkasink-tfd-dead-letter.yaml").read_text())
    parse_kafka_sink(doc)  # the repository's own is valid
    doc["spec"][field] = value
    with pytest.raises(ManifestError, match=f"KafkaSink tfd-dead-letter: .*{message.replace('.', '[.]')}"):
        parse_kafka_sink(doc)


def test_defaults_follow_knative():
    doc = _tfd_doc()
    del doc["spec"]["delivery"]
    assert parse_kafka_source(doc).delivery == CONTROLLER_DEFAULT_DELIVERY
    doc["spec"]["delivery"] = {"retry": 2}
    delivery = parse_kafka_source(doc).delivery
    assert (delivery.backoff_policy, delivery.backoff_delay, delivery.timeout) == ("exponential", 0.3, 600.0)


def test_backoff_formulas():
    exponential = DeliverySpec(retry=10, backoff_policy="exponential", backoff_delay=0.3)
    assert [round(exponential.backoff(n), 1) for n in (1, 2, 10)] == [0.6, 1.2, 307.2]
    assert round(sum(exponential.backoff(n) for n in range(1, 11)), 1) == 613.8  # the ~614 s of the defaults
    linear = DeliverySpec(retry=3, backoff_policy="linear", backoff_delay=0.5)
    assert [linear.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]


@pytest.mark.parametrize(("text", "seconds"), [("PT0.3S", 0.3), ("PT10S", 10), ("PT1M", 60), ("P1DT1H", 90000)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "P", "PT", "10s", "PT-1S", "1.5", "PTS"])
def test_malformed_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
