"""The `coelho` command line: produce events, list and serve functions, run the platform."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from coelho.config import ENVIRONMENT, Settings

__all__ = ["main", "run"]

DESCRIPTION = """\
COELHO RealTime: online machine learning on event streams, shipped as Knative functions.

  coelho up                       run everything locally (embedded Valkey, functions, producers)
  coelho produce tfd --rate 5     stream synthetic events to a sink (K_SINK) or a file
  coelho fn list                  the deployable functions, their sources and targets
  coelho fn serve tfd-predict     serve one function exactly as its container would
  coelho dispatch --sink tfd-learn=http://127.0.0.1:8081/   run the KafkaSources locally
  coelho dlq list tfd             show dead-lettered events and why they failed
  coelho ingest spark --once      Kafka topics → Delta tables with Spark Structured Streaming
  coelho ingest kafka --once      Kafka topics → Delta tables with a bulk Python consumer (exactly once)
  coelho ui --port 8080           the web UI over the functions (NiceGUI)
  coelho manifests check          the Knative Services agree with the catalog (write: regenerate them)
  coelho train tfd                train a batch model (CatBoost / KMeans) on a Delta table, tracked in MLflow
"""


MANIFESTS = Path("eventing/knative")
SERVICES = Path("infra/knative/services")
CLUSTER_SCRIPT = Path("infra/k3d/cluster.sh")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="coelho", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Environment variables: " + ", ".join(var for var, _ in ENVIRONMENT.values()),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from coelho.producers.run import add_produce_arguments

    produce = commands.add_parser(
        "produce", help="stream synthetic events as CloudEvents",
        description="Stream synthetic events of one use case as CloudEvents, over HTTP in binary mode "
        "to --sink (default: $K_SINK) or as structured JSON lines to --out.",
    )
    add_produce_arguments(produce)

    fn = commands.add_parser("fn", help="list or serve the functions")
    fn_commands = fn.add_subparsers(dest="fn_command", required=True, metavar="ACTION")
    fn_commands.add_parser("list", help="print every function with its source, target and signature")
    serve = fn_commands.add_parser(
        "serve", help="serve one function under functions-framework, as on Knative",
        description="Run `functions-framework --target ... --source ...` for NAME; configuration comes "
        "from the environment exactly as in the container.",
    )
    serve.add_argument("name", help="function name, e.g. tfd-learn (see `coelho fn list`)")
    serve.add_argument("--port", type=int, default=None,
                       help="port to listen on (default: $PORT or 8080)")

    dispatch = commands.add_parser(
        "dispatch", help="run the KafkaSource manifests locally (Kafka → CloudEvents → functions)",
        description="Consume the topics of every KafkaSource in --manifests and deliver each record to its sink "
        "exactly as Knative's KafkaSource does: CloudEvents pass through, other records are wrapped; ordered or "
        "unordered delivery; Knative's retry, back-off, timeout and dead-letter rules; in-order offset commits.",
    )
    dispatch.add_argument("--manifests", type=Path, default=MANIFESTS, help=f"manifest folder (default {MANIFESTS})")
    dispatch.add_argument("--source", action="append", default=[], metavar="NAME",
                          help="only this KafkaSource (repeatable; default: all)")
    dispatch.add_argument("--sink", action="append", default=[], metavar="NAME=URL",
                          help="local URL of a sink ref, e.g. tfd-learn=http://127.0.0.1:8081/ (repeatable)")
    dispatch.add_argument("--commit-interval", type=float, default=5.0,
                          help="seconds between offset commits (Knative: 5)")
    dispatch.add_argument("--metrics-port", type=int, default=None, metavar="P",
                          help="serve Prometheus metrics (deliveries, retries, dead letters, lag per partition, "
                               "in flight) on :P/metrics (default: off)")

    dlq = commands.add_parser("dlq", help="inspect or re-drive a use case's dead-letter topic")
    dlq.add_argument("action", choices=["list", "replay"], help="list: print dead letters; replay: re-produce them")
    dlq.add_argument("source", help="use case key (tfd, eta, ecci) or KafkaSource name")
    dlq.add_argument("--manifests", type=Path, default=MANIFESTS, help=f"manifest folder (default {MANIFESTS})")
    dlq.add_argument("--limit", type=int, default=100, help="list at most this many (default 100)")

    ingest = commands.add_parser("ingest", help="ingest the Kafka topics into Delta tables")
    ingest_commands = ingest.add_subparsers(dest="ingest_command", required=True, metavar="ENGINE")
    spark = ingest_commands.add_parser(
        "spark", help="Spark Structured Streaming: Kafka → Delta, exactly once",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Stream each use case's Kafka topic (KAFKA_BOOTSTRAP_SERVERS) into its Delta table
(COELHO_DELTA_ROOT/<use case>, default COELHO_DATA_DIR/delta/<use case>): flattened typed columns,
event_time, CloudEvent id/source, Kafka partition/offset. Checkpoints: COELHO_SPARK_CHECKPOINT_ROOT
(default COELHO_DATA_DIR/checkpoints/spark). A restart, also after a crash, writes each record once;
records that cannot become a row go to <use case>_quarantine with the reason.
The Delta/Kafka jars are fetched once with Maven (infra/spark/pom.xml) into .cache/ (COELHO_CACHE_DIR);
hadoop-aws is added when a location is s3:// (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).""",
    )
    spark.add_argument("--use-case", action="append", choices=["tfd", "eta", "ecci"], default=None,
                       dest="use_cases", help="only this use case (repeatable; default: all three)")
    spark.add_argument("--trigger", default=None, metavar="INTERVAL",
                       help="micro-batch interval, e.g. 500ms, 5s, '1 minute' (default: $COELHO_SPARK_TRIGGER or 5s)")
    spark.add_argument("--once", action="store_true",
                       help="ingest what the topics hold now, then stop (Trigger.AvailableNow)")
    spark.add_argument("--master", default="local[2]", help="Spark master URL (default local[2])")
    spark.add_argument("--topic", action="append", default=[], metavar="USE_CASE=TOPIC",
                       help="read another topic for a use case (repeatable; default: the producers' topics)")
    spark.add_argument("--max-records-per-batch", type=int, default=None, metavar="N",
                       help="at most N Kafka records per micro-batch and use case (default: all available)")
    spark.add_argument("--ui", action="store_true", help="serve the Spark UI (off by default)")
    spark.add_argument("--metrics-port", type=int, default=None, metavar="P",
                       help="serve the job's Prometheus metrics (coelho_spark_*: batches, rows, quarantined, batch "
                            "duration) on :P/metrics (default: off)")

    kafka = ingest_commands.add_parser(
        "kafka", help="a bulk Python consumer: Kafka → Delta, exactly once (the volume path)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Consume each use case's Kafka topic (KAFKA_BOOTSTRAP_SERVERS) in bulk and append it to its Delta table
(same rows and quarantine table as the Spark job), one commit per batch of COELHO_INGEST_BATCH_ROWS records
(or what arrived in COELHO_INGEST_BATCH_MS). Each commit records the Kafka offsets it holds as Delta
transaction identifiers, and a restart resumes from them: each record is written once, also after a crash.""",
    )
    kafka.add_argument("--use-case", action="append", choices=["tfd", "eta", "ecci"], default=None,
                       dest="use_cases", help="only this use case (repeatable; default: all three)")
    kafka.add_argument("--topic", action="append", default=[], metavar="USE_CASE=TOPIC",
                       help="read another topic for a use case (repeatable; default: the producers' topics)")
    kafka.add_argument("--once", action="store_true", help="ingest what the topics hold now, then stop")
    kafka.add_argument("--batch-rows", type=int, default=None, metavar="N",
                       help="records per Delta commit (default: $COELHO_INGEST_BATCH_ROWS or 50000)")
    kafka.add_argument("--workers", type=int, default=1, metavar="N",
                       help="consumer processes per use case, in one consumer group (they split the partitions; "
                            "default 1)")
    kafka.add_argument("--group", default=None,
                       help="consumer group prefix (default coelho-ingest; the group splits the partitions)")

    ui = commands.add_parser(
        "ui", help="serve the web UI (NiceGUI), a client of the functions over HTTP",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Serve the web UI: per use case the tabs Incremental (live model, metrics, predictions), Batch (training,
runs, diagnostics) and SQL (queries on the Delta tables). It calls the functions over HTTP only, at
COELHO_FUNCTION_URL_TEMPLATE (default http://127.0.0.1:{port}, the ports of `coelho up`), each
overridable in COELHO_FUNCTION_URLS (name=url,...). COELHO_UI_PASSWORD asks for a password;
COELHO_UI_LINKS adds links to services (MLflow, Grafana...); COELHO_UI_TILE_URL sets the map tiles
(off: none). One process (NiceGUI keeps each browser tab's state in memory).""",
    )
    ui.add_argument("--port", type=int, default=None, help="port to listen on (default: $PORT or 8080)")
    ui.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")

    manifests = commands.add_parser(
        "manifests", help="generate or check the Knative Services of the functions",
        description="The Knative Services in infra/knative/services/ are generated from the function catalog "
        "(coelho.runtime.catalog) and the role policy (coelho.deploy.policy). `write` regenerates them; `check` "
        "(run from the repository root) exits 1 naming every file that differs from what would be generated and "
        "every cross-manifest problem under infra/ and eventing/knative/ (a sink or topic that is not defined, an "
        "unknown setting, a missing Secret or ConfigMap, another image tag).",
    )
    manifests.add_argument("action", choices=["write", "check"])
    manifests.add_argument("--folder", type=Path, default=SERVICES, help=f"output folder (default {SERVICES})")

    from coelho.runtime.train_cli import DESCRIPTION as TRAIN_DESCRIPTION
    from coelho.runtime.train_cli import add_train_arguments

    train = commands.add_parser("train", help="train a use case's batch model on its Delta table",
                                description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(train)

    up = commands.add_parser(
        "up", help="run the platform locally until Ctrl-C",
        description="Start the embedded Valkey (unless REDIS_URL is set), the twelve functions (learn, predict "
        "and batch-predict per use case, sql, delta-sink, train), a lean MLflow server, the web UI and the "
        "three producers feeding the learn functions and delta-sink. State goes to COELHO_DATA_DIR (default .coelho/).",
    )
    up.add_argument("--base-port", type=int, default=8081, help="first function port (default 8081)")
    up.add_argument("--ui-port", type=int, default=None, help="web UI port (default: the base port - 1, 8080)")
    up.add_argument("--rate-scale", type=float, default=1.0,
                    help="multiply the producers' default rates (3.6, 1.8, 8 events/s)")
    up.add_argument("--no-producers", action="store_true", help="serve the functions only")
    up.add_argument("--kafka", action="store_true",
                    help="go through Kafka: a local broker (jars from Maven Central, cached in .cache/), producers "
                    "on Kafka and the KafkaSource dispatcher (what `make up KAFKA=1` runs)")
    up.add_argument("--prometheus", action="store_true",
                    help="also start a real Prometheus (Debian's package, unpacked into .cache/) scraping every "
                    "process with the repository's alert rules, and print its URL (what `make up PROMETHEUS=1` runs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `coelho` console script."""
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "produce":
        from coelho.producers.run import run_from_args

        return run_from_args(args)
    if args.command == "fn":
        return _fn(args)
    if args.command in ("dispatch", "dlq"):
        from coelho.dispatch.cli import run_dispatch, run_dlq

        return run_dispatch(args, settings) if args.command == "dispatch" else run_dlq(args, settings)
    if args.command == "ingest":
        return _ingest(args, settings)
    if args.command == "ui":
        from coelho_ui.main import serve

        serve(settings, args.port or settings.port, args.host)
        return 0
    if args.command == "manifests":
        return _manifests(args)
    if args.command == "train":
        from coelho.runtime.train_cli import run_train_command

        return run_train_command(args, settings)
    from coelho.runtime.launcher import run_platform

    return run_platform(settings, args.base_port, args.rate_scale, not args.no_producers, args.kafka, args.prometheus,
                        args.ui_port)


def _fn(args: argparse.Namespace) -> int:
    from coelho.runtime.catalog import FUNCTIONS, find

    if args.fn_command == "list":
        print(f"{'NAME':<18} {'SIGNATURE':<10} {'SERVER':<7} {'TARGET':<18} SOURCE")
        for spec in FUNCTIONS:
            print(f"{spec.name:<18} {spec.signature:<10} {spec.server:<7} {spec.target:<18} {spec.source}")
        return 0
    try:
        spec = find(args.name)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    command = spec.command(args.port or Settings.from_env().port)
    os.execve(command[0], command, spec.environment() | dict(os.environ))
    return 0  # pragma: no cover - execv does not return


def _manifests(args: argparse.Namespace) -> int:
    from coelho.deploy.checks import consistency_problems, load_documents, script_secrets
    from coelho.deploy.knative import stale, write

    if args.action == "write":
        for path in write(args.folder):
            print(path)
        return 0
    problems = [f"{args.folder}/{problem} (regenerate: coelho manifests write)" for problem in stale(args.folder)]
    docs = load_documents(sorted(Path("infra").rglob("*.yaml")) + sorted(MANIFESTS.glob("*.yaml")))
    problems += consistency_problems(docs, script_secrets(CLUSTER_SCRIPT.read_text()))
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(docs)} manifests, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    topics = dict(item.split("=", 1) for item in args.topic if "=" in item)
    if len(topics) != len(args.topic) or not set(topics) <= {"tfd", "eta", "ecci"}:
        print(f"--topic must be USE_CASE=TOPIC with a use case of tfd, eta, ecci: {args.topic}", file=sys.stderr)
        return 2
    use_cases = args.use_cases or ["tfd", "eta", "ecci"]
    if args.ingest_command == "kafka":
        from coelho.ingest import kafka_delta

        return kafka_delta.run(settings, use_cases, topics=topics, once=args.once, group=args.group,
                               batch_rows=args.batch_rows, workers=args.workers)
    from coelho.ingest.spark_job import parse_trigger, run

    try:
        parse_trigger(args.trigger or settings.spark_trigger)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)
    return run(settings, use_cases, topics=topics, trigger=args.trigger,
               once=args.once, master=args.master, ui=args.ui, max_records=args.max_records_per_batch)


def run() -> NoReturn:
    """The `coelho` command (console script and `python -m coelho.cli`): `main`, then exit with its code.

    A training imports CatBoost, scikit-learn, MLflow and matplotlib, and the interpreter's teardown of all that
    takes about two seconds. When `coelho train` returns, everything it made is written (MLflow calls are
    synchronous, the outcome printed, the status in Redis), so it runs the exit handlers, flushes its output
    and leaves without the teardown. Every other command exits as usual.
    """
    code = main()
    if sys.argv[1:2] == ["train"]:
        atexit._run_exitfuncs()  # logging's flush, an embedded Valkey this process started, MLflow's own
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
