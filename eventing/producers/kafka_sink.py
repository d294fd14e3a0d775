"""Deliver CloudEvents to Kafka in binary mode (CloudEvents Kafka protocol binding), at least once.

One event is one record: the value is the JSON data (the same bytes as the HTTP binary body), the
``content-type`` header is the datacontenttype, every other attribute and extension travels as a
``ce_<name>`` header, ``partitionkey`` included (``cloudevents.kafka.to_binary`` of SDK 1.12 leaves it
out, and a KafkaSource forwards binary CloudEvents unchanged, so without that header the function
would not see it), and the key is the ``partitionkey``, so the events of one user, driver or session
stay in one partition, in order.

The producer is idempotent with acks=all, and librdkafka retries a failed send until
``message.timeout.ms``. A delivery that still fails is counted and raises `DeliveryError` at the next
send, flush or close: an outage stops the producer loudly instead of silently losing events. A
background thread serves the delivery reports as they arrive, so a paced producer's latencies and
failures are seen at once, not at its next send.

Examples
--------
>>> from coelho.core import tfd
>>> from coelho.producers.cloudevent import to_cloudevent
>>> record = to_kafka_record(to_cloudevent("tfd", tfd.EXAMPLE))
>>> record.key, dict(record.headers)["ce_partitionkey"], dict(record.headers)["content-type"]
('user_000042', b'user_000042', b'application/json')
>>> TOPICS["eta"]
'estimated_time_of_arrival'
"""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import partial
from types import TracebackType
from typing import NamedTuple

from cloudevents.http import CloudEvent
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from coelho.producers.metrics import (
    CONNECTED,
    CONNECTION_RETRIES,
    ERRORS,
    LAST_MESSAGE,
    MESSAGE_BYTES,
    MESSAGES_SENT,
    SEND_SECONDS,
)
from coelho.producers.sink import DeliveryError, DeliveryStats

__all__ = ["TOPICS", "KafkaRecord", "KafkaSink", "to_kafka_record"]

log = logging.getLogger(__name__)

#: Use case → Kafka topic: the original system's topic names.
TOPICS: dict[str, str] = {
    "tfd": "transaction_fraud_detection",
    "eta": "estimated_time_of_arrival",
    "ecci": "e_commerce_customer_interactions",
}
_PRODUCERS = {topic: key for key, topic in TOPICS.items()}
LINGER_MS = 5
#: Seconds between two readiness checks of the topic while the broker is not ready.
READINESS_PAUSE = 0.5
#: Longest wait of one poll of the report-serving thread (it returns at once when a report arrives).
POLL_SECONDS = 0.1


class KafkaRecord(NamedTuple):
    """What `KafkaSink` hands to the Kafka client for one event."""

    key: str | None
    value: bytes
    headers: list[tuple[str, bytes]]


def to_kafka_record(event: CloudEvent) -> KafkaRecord:
    """The binary-mode Kafka record of `event`, keyed by its ``partitionkey`` (None without one)."""
    attributes = event.get_attributes()
    headers = []
    if content_type := attributes.get("datacontenttype"):
        headers.append(("content-type", str(content_type).encode()))
    headers += [(f"ce_{name}", str(value).encode())
                for name, value in attributes.items() if name != "datacontenttype" and value is not None]
    key = attributes.get("partitionkey")
    return KafkaRecord(None if key is None else str(key), json.dumps(event.data).encode(), headers)


class KafkaSink:
    """Produce binary-mode CloudEvents to `topic`; `send` queues, delivery reports confirm.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port...]`` of the Kafka cluster.
    topic
        Destination topic; it must exist (or the brokers must auto-create it).
    producer
        The ``producer`` label of the metrics; default the use case of `topic` in `TOPICS`, else `topic`.
    message_timeout
        Seconds allowed to reach the topic at start, and per event until its acknowledgement
        (``message.timeout.ms``, librdkafka retries within it).

    Notes
    -----
    `stats` counts events queued (sent), acknowledged (delivered) and failed, and in `retries` the
    failed readiness checks at start; librdkafka's own resends are not visible per event.
    """

    def __init__(
        self, bootstrap_servers: str, topic: str, *, producer: str | None = None, message_timeout: float = 30.0,
    ) -> None:
        if message_timeout <= 0:
            raise ValueError(f"message_timeout must be > 0, got {message_timeout}")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.producer = producer or _PRODUCERS.get(topic, topic)
        self.stats = DeliveryStats()
        self._timeout = message_timeout
        self._failure: str | None = None
        self._last_error: int | None = None  # code of the last client-wide error, to log each kind once
        self._closed = False
        self._lock = threading.Lock()  # delivery reports are served by the poller and by flush()
        self._stopping = threading.Event()
        self._sent = MESSAGES_SENT.labels(topic, self.producer)
        self._seconds = SEND_SECONDS.labels(topic)
        self._bytes = MESSAGE_BYTES.labels(topic)
        self._connected = CONNECTED.labels(self.producer)
        self._retries = CONNECTION_RETRIES.labels(self.producer)
        self._last = LAST_MESSAGE.labels(self.producer)
        self._producer = Producer({
            "bootstrap.servers": bootstrap_servers,
            "client.id": f"{topic}_client",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": LINGER_MS,
            "message.timeout.ms": int(message_timeout * 1000),
            "partitioner": "murmur2_random",  # the Java client's: same key, same partition
            "error_cb": self._on_error,
            "logger": log,
        })
        try:
            self._await_topic()
        except DeliveryError:
            self._producer.close()
            raise
        self._poller = threading.Thread(target=self._serve_reports, name=f"kafka-reports-{topic}", daemon=True)
        self._poller.start()

    def send(self, event: CloudEvent) -> bool:
        """Queue one event; True once queued (delivery reports confirm it later).

        Raises DeliveryError if an earlier event could not be delivered, or this one could not be
        queued within the message timeout.
        """
        self._raise_on_failure()
        key, value, headers = to_kafka_record(event)
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                self._producer.produce(self.topic, value, key, headers=headers,
                                       on_delivery=partial(self._on_delivery, event["id"]))
                break
            except BufferError:  # the local queue is full: serve delivery reports, then try again
                if time.monotonic() > deadline:
                    raise DeliveryError(f"event {event['id']}: the Kafka producer queue stayed full for "
                                        f"{self._timeout} s") from None
                self._producer.poll(0.1)
                self._raise_on_failure()
            except KafkaException as exc:
                self._fail(exc.args[0], f"event {event['id']} refused")
                self._raise_on_failure()
        self.stats.sent += 1
        self._bytes.observe(len(value))
        return True

    def flush(self, timeout: float | None = None) -> None:
        """Wait for the delivery reports of every queued event.

        Raises DeliveryError if one failed, or some are still pending after `timeout` seconds
        (default: the message timeout plus 5 s, by which librdkafka has given up on them).
        """
        pending = self._producer.flush(self._timeout + 5.0 if timeout is None else timeout)
        self._raise_on_failure()
        if pending:
            raise DeliveryError(f"{pending} events not acknowledged by Kafka topic {self.topic} "
                                f"at {self.bootstrap_servers} in time")

    def close(self) -> None:
        """Flush (see `flush`), then release the client; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._stopping.set()
            self._poller.join()
            self._producer.close()
            self._connected.set(0)

    def _await_topic(self) -> None:
        """Wait, within the message timeout, until the broker answers with the topic's partition leaders."""
        deadline = time.monotonic() + self._timeout
        while True:
            problem = self._topic_problem(max(0.1, min(5.0, deadline - time.monotonic())))
            if problem is None:
                self._connected.set(1)
                self._last_error = None
                return
            self._connected.set(0)
            self._retries.inc()
            self.stats.retries += 1
            if time.monotonic() + READINESS_PAUSE > deadline:
                raise DeliveryError(f"Kafka topic {self.topic} at {self.bootstrap_servers} not ready within "
                                    f"{self._timeout} s: {problem}")
            log.warning("Kafka topic %s at %s not ready (%s); retrying", self.topic, self.bootstrap_servers, problem)
            time.sleep(READINESS_PAUSE)

    def _topic_problem(self, timeout: float) -> str | None:
        """Why the topic cannot take events yet, or None when every partition has a leader."""
        try:
            metadata = self._producer.list_topics(self.topic, timeout=timeout)
        except KafkaException as exc:
            return str(exc.args[0])
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return str(topic.error) if topic is not None else "no metadata"
        if not topic.partitions or any(p.leader < 0 for p in topic.partitions.values()):
            return "partition leaders not elected yet"
        return None

    def _serve_reports(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(POLL_SECONDS)

    def _on_delivery(self, event_id: str, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            with self._lock:
                self.stats.failed += 1
            self._fail(error, f"event {event_id} not delivered")
            return
        with self._lock:
            self._last_error = None
            self.stats.delivered += 1
        self._sent.inc()
        if (latency := message.latency()) is not None:
            self._seconds.observe(latency)
        self._last.set_to_current_time()
        self._connected.set(1)

    def _on_error(self, error: KafkaError) -> None:
        """Client-wide errors: a lost cluster, or a fatal error that leaves the producer unusable."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._connected.set(0)
            self._retries.inc()
        if error.fatal():
            self._fail(error, "fatal error of the producer")
        elif error.code() != self._last_error:  # librdkafka repeats e.g. "connection refused" per reconnect
            log.warning("Kafka producer %s: %s", self.producer, error.str())
        self._last_error = error.code()

    def _fail(self, error: KafkaError, what: str) -> None:
        """Count `error`, log it, and keep the first failure to raise from now on."""
        ERRORS.labels(self.topic, self.producer, error.name().lstrip("_").lower()).inc()
        message = f"{what} to Kafka topic {self.topic} at {self.bootstrap_servers}: {error.str()}"
        log.error("%s", message)
        with self._lock:
            self._failure = self._failure or message

    def _raise_on_failure(self) -> None:
        if self._failure is not None:
            raise DeliveryError(self._failure)

    def __enter__(self) -> KafkaSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # already failing: still try to deliver what is queued, but keep the original error
            self.close()
        except DeliveryError as error:
            log.error("%s", error)
