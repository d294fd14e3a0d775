"""Command-line glue of `coelho dispatch` and `coelho dlq`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading

from prometheus_client import start_http_server

from coelho.config import Settings
from coelho.dispatch.manifest import ManifestError
from coelho.dispatch.runner import Dispatch, find_source, list_dead_letters, replay_dead_letters

__all__ = ["run_dispatch", "run_dlq"]

log = logging.getLogger(__name__)


def run_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; exit 2 on a manifest error (the field is named)."""
    try:
        sinks = dict(item.split("=", 1) for item in args.sink)
    except ValueError:
        log.error("--sink takes NAME=URL")
        return 2
    try:
        dispatch = Dispatch.from_folder(args.manifests, sinks, settings.kafka_bootstrap_servers, args.source or None,
                                        args.commit_interval)
    except (ManifestError, OSError) as exc:
        log.error("%s", exc)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.metrics_port is not None:
        try:
            server, _ = start_http_server(args.metrics_port, addr="0.0.0.0")
        except OSError as exc:
            log.error("cannot serve metrics on port %d: %s", args.metrics_port, exc)
            return 2
        log.info("serving Prometheus metrics on http://0.0.0.0:%d/metrics", server.server_address[1])
    log.info("dispatching %s from %s via %s", [s.name for s in dispatch.sources], args.manifests,
             settings.kafka_bootstrap_servers)
    dispatch.run(stop)
    return 0


def run_dlq(args: argparse.Namespace, settings: Settings) -> int:
    """`list` prints one JSON line per dead letter; `replay` re-produces them to the source topic."""
    try:
        source, sink = find_source(args.manifests, args.source)
    except (ManifestError, OSError) as exc:
        log.error("%s", exc)
        return 2
    if args.action == "list":
        for letter in list_dead_letters(settings.kafka_bootstrap_servers, sink.topic, args.limit):
            print(json.dumps(letter.summary()))
        return 0
    count = replay_dead_letters(settings.kafka_bootstrap_servers, source, sink.topic)
    print(f"replayed {count} dead letters from {sink.topic} to {source.topics[0]}")
    return 0
