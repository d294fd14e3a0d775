"""Event producers: reproducible, realistic TFD/ETA/ECCI streams shipped as CloudEvents.

Modules: `tfd`, `eta`, `ecci` (generators), `cloudevent` (wrapping), `sink` (HTTP delivery), `window` (HTTP
delivery with several events in flight), `kafka_sink` (Kafka delivery), `metrics` (Prometheus), `run` (pacing and
the ``coelho produce`` command).
"""

from __future__ import annotations

from coelho.producers.base import EventGenerator
from coelho.producers.cloudevent import to_cloudevent, to_json_line
from coelho.producers.ecci import EcciGenerator
from coelho.producers.eta import EtaGenerator
from coelho.producers.kafka_sink import TOPICS, KafkaRecord, KafkaSink, to_kafka_record
from coelho.producers.run import (
    GENERATORS,
    ProduceReport,
    add_produce_arguments,
    make_generator,
    produce,
    run_from_args,
)
from coelho.producers.sink import DeliveryError, DeliveryStats, HttpSink
from coelho.producers.tfd import TfdGenerator
from coelho.producers.window import UnorderedSink

__all__ = [
    "GENERATORS",
    "TOPICS",
    "DeliveryError",
    "DeliveryStats",
    "EcciGenerator",
    "EtaGenerator",
    "EventGenerator",
    "HttpSink",
    "KafkaRecord",
    "KafkaSink",
    "ProduceReport",
    "TfdGenerator",
    "UnorderedSink",
    "add_produce_arguments",
    "make_generator",
    "produce",
    "run_from_args",
    "to_cloudevent",
    "to_json_line",
    "to_kafka_record",
]
