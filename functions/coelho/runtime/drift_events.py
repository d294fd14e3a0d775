"""CloudEvents `io.coelho.drift.detected.v1` for a learner's drift detections, sent to `COELHO_DRIFT_SINK`.

Off unless the sink is set. Never in the way of learning: `observe(model)` compares two numbers on the
learn path, and a new detection becomes a job of its own `Outbox` (one thread, bounded, retried with
back-off while the sink is down or answers 5xx/404/408/409/429; any other refusal is logged and dropped).
The event is POSTed in binary mode, id `<use case>-drift-<n>` for the model's n-th detection, source
`/coelho/<use case>-learn`, time = the detecting event's own timestamp. Delivered detections are remembered
in Redis (`<prefix>:<use case>:drift:notified`), so a new leader sends what its predecessor had not (a replay
after a crash detects the same drift at the same event, with the same id: at-least-once, deduplicated by
the sink on source + id) and nothing twice after a clean hand-over.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from coelho.adapters.redis_state import RedisState
from coelho.core.online import OnlineModel
from coelho.core.train_request import EVENT_TYPES
from coelho.dispatch.delivery import is_retryable
from coelho.runtime.outbox import Outbox

__all__ = ["DRIFT_EVENT_TYPE", "DriftNotifier", "drift_event"]

log = logging.getLogger(__name__)

DRIFT_EVENT_TYPE = EVENT_TYPES[2]  # the train function and a JobSink accept it: the use case is retrained
TIMEOUT_S = 5.0


def drift_event(use_case: str, detection: dict[str, Any], model: OnlineModel) -> CloudEvent:
    """The CloudEvent of one detection (an entry of `DriftMonitor.recent`)."""
    drift = model.drift
    return CloudEvent({
        "type": DRIFT_EVENT_TYPE,
        "source": f"/coelho/{use_case}-learn",
        "id": f"{use_case}-drift-{detection['detection']}",
        "time": detection["at"],
        "subject": use_case,
        "datacontenttype": "application/json",
    }, {
        "use_case": use_case,
        **detection,
        "detector": drift.detector_name,
        "error": drift.error_name,
        "preset": model.preset,
    })


class DriftNotifier:
    """Sends each new detection of one learner's model to the sink, off the learn path."""

    def __init__(self, use_case: str, state: RedisState, sink: str) -> None:
        self.use_case = use_case
        self.state = state
        self.sink = sink
        self.outbox = Outbox(f"{use_case}-drift-events", capacity=100)
        self.model: OnlineModel | None = None
        self.queued = 0
        self.session = requests.Session()

    def observe(self, model: OnlineModel) -> None:
        """Queue the detections of `model` not sent yet (cheap when there are none)."""
        if model is not self.model:  # a new leadership: start from what was delivered before
            self.model, self.queued = model, int(self.state.client.get(self.state.key("drift:notified")) or 0)
        if model.drift.detections <= self.queued:
            return
        for detection in model.drift.recent:
            if detection["detection"] > self.queued:
                event = drift_event(self.use_case, detection, model)
                self.outbox.submit(lambda event=event, n=detection["detection"]: self._send(event, n))
        self.queued = model.drift.detections

    def _send(self, event: CloudEvent, detection: int) -> None:
        headers, body = to_binary(event)
        response = self.session.post(self.sink, headers=headers, data=body, timeout=TIMEOUT_S)
        if not response.ok and is_retryable(response.status_code):
            raise RuntimeError(f"drift event {event['id']}: {self.sink} answered {response.status_code}")
        if response.ok:
            self.state.client.set(self.state.key("drift:notified"), detection)
            log.info("%s: drift event %s delivered to %s", self.use_case, event["id"], self.sink)
        else:
            log.error("%s: drift event %s refused by %s with %d: %s", self.use_case, event["id"], self.sink,
                      response.status_code, response.text[:300])

    def status(self) -> dict[str, Any]:
        """The sink and its outbox (pending, dropped, last error)."""
        return {"sink": self.sink, "queued": self.queued, **self.outbox.status()}

    def close(self, timeout: float) -> None:
        """Deliver what is queued within `timeout`, then stop."""
        self.outbox.close(timeout)
        self.session.close()
