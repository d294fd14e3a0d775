"""Learn functions: each accepted CloudEvent is applied exactly once to its use case's online model."""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from coelho.runtime.services import LearnService

service = LearnService.mount(flask.current_app)


@functions_framework.cloud_event
def tfd_learn(event: CloudEvent) -> None:
    """Learn one card transaction (io.coelho.tfd.transaction.v1)."""
    service.handle(event)


@functions_framework.cloud_event
def eta_learn(event: CloudEvent) -> None:
    """Learn one finished trip (io.coelho.eta.trip.v1)."""
    service.handle(event)


@functions_framework.cloud_event
def ecci_learn(event: CloudEvent) -> None:
    """Learn one shop interaction (io.coelho.ecci.interaction.v1)."""
    service.handle(event)
