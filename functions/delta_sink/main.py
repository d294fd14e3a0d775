"""delta-sink: every use case's CloudEvents appended to their Delta tables, acknowledged once committed."""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from coelho.runtime.services import SinkService

service = SinkService.mount(flask.current_app)


@functions_framework.cloud_event
def delta_sink(event: CloudEvent) -> None:
    """Append one event of any use case (routed by its CloudEvent type) to its Delta table."""
    service.handle(event)
