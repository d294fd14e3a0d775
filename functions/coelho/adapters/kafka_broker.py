"""A real single-node Apache Kafka (KRaft, broker and controller in one JVM) for development and CI.

The broker's jars come from Maven Central: `infra/kafka/pom.xml` lists them and `coelho.adapters.maven` copies
them to `<cache>/kafka-<version>/libs` (cache: `$COELHO_CACHE_DIR`, else `.cache/` at the repository root).
The broker runs as `java -cp '<libs>/*' kafka.Kafka server.properties` on 127.0.0.1, in its own session,
with its data, logs and pid file under a work folder.

Command line::

    python -m coelho.adapters.kafka_broker {fetch,start,stop,status} [--workdir DIR] [--port N]
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from coelho.adapters.maven import REPO_ROOT, MavenError, default_cache_dir, fetch_jars

__all__ = ["TOPIC_PARTITIONS", "KafkaBroker", "KafkaBrokerError", "default_cache_dir", "fetch_libs", "kafka_version"]

log = logging.getLogger(__name__)

_started: list[KafkaBroker] = []  # stopped at interpreter exit unless stopped (or detached, by the CLI) before

POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"
PID_FILE = "kafka.pid"
PROPERTIES_FILE = "server.properties"
CONSOLE_LOG = "kafka.out"
SERVER_LOG = "logs/server.log"
PORT_RELEASE_WAIT_S = 10.0
#: Partitions of the use-case topics. Ordered delivery keeps one event in flight per partition, so
#: this bounds a KafkaSource's parallelism into one function (keys stay ordered either way).
TOPIC_PARTITIONS = 6
HEAP_OPTS = ("-Xmx512m", "-Xms256m")
JVM_OPTS = (
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
)
LOG4J2 = """\
status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class KafkaBrokerError(RuntimeError):
    """The broker could not be fetched, started, stopped or used."""


def kafka_version(pom: Path = POM) -> str:
    """The `org.apache.kafka:kafka_2.13` version that `pom` asks for."""
    if not pom.is_file():
        raise KafkaBrokerError(f"{pom} not found: the Kafka pom ships with the source tree, not the wheel")
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    for dep in ET.parse(pom).getroot().iterfind("m:dependencies/m:dependency", ns):
        if dep.findtext("m:artifactId", namespaces=ns) == "kafka_2.13":
            return dep.findtext("m:version", namespaces=ns) or ""
    raise KafkaBrokerError(f"{pom} has no org.apache.kafka:kafka_2.13 dependency")


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise KafkaBrokerError(f"`{name}` not found on PATH: {hint}")
    return found


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (candidate := Path(home, "bin", "java")).is_file():
        return str(candidate)
    return _tool("java", "install a Java 17+ runtime (apt-get install openjdk-17-jre-headless)")


def fetch_libs(cache_dir: Path | None = None, pom: Path = POM) -> Path:
    """Download the broker's jars with Maven unless already there; return the libs folder.

    Parameters
    ----------
    cache_dir : Path, optional
        Holds the local Maven repository (`m2/`) and `kafka-<version>/libs`; default `default_cache_dir()`.
    pom : Path
        The pom listing the broker and its logging binding.

    Returns
    -------
    Path
        A folder of jars for `java -cp '<libs>/*'`, marked complete for this pom's content.
    """
    try:
        return fetch_jars(pom, _libs_dir(cache_dir, pom), expect="kafka_2.13-*.jar", cache_dir=cache_dir)
    except MavenError as error:
        raise KafkaBrokerError(str(error)) from None


def _libs_dir(cache_dir: Path | None = None, pom: Path = POM) -> Path:
    return (cache_dir or default_cache_dir()).resolve() / f"kafka-{kafka_version(pom)}" / "libs"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_free(port: int) -> bool:
    """Whether a server could listen on the port now (SO_REUSEADDR like Kafka's: TIME_WAIT does not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone once its last thread has exited
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return True
    return not (status.get("State", "").strip().startswith("Z") and status.get("Threads", "").strip() == "1")


def _cluster_id() -> str:
    """A random Kafka cluster id: a UUID in URL-safe base64 without padding, not starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _ensure_topics(admin: AdminClient, names: list[str], partitions: int, timeout: float) -> str | None:
    """Create missing topics and wait for their leaders; return what went wrong, if anything."""
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)
                                   for name in names], request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                return f"creating topic {name!r} failed: {error.args[0]}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        except KafkaException as error:
            return f"listing topics failed: {error.args[0]}"
        pending = []
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                pending.append(name)
            elif len(topic.partitions) < partitions:
                return f"topic {name!r} exists with {len(topic.partitions)} partitions, fewer than {partitions}"
            elif any(p.leader < 0 or p.error is not None for p in topic.partitions.values()):
                pending.append(name)
        if not pending:
            return None
        if time.monotonic() > deadline:
            return f"topics {pending} not ready after {timeout} s"
        time.sleep(0.1)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class KafkaBroker:
    """One Kafka 4.x node (broker + KRaft controller) on 127.0.0.1, data under `workdir`.

    Parameters
    ----------
    workdir : Path
        Holds `server.properties`, `data/`, `logs/server.log`, `kafka.out` (JVM console) and `kafka.pid`.
    port : int, optional
        Client (PLAINTEXT) port. By default the port of an earlier start in `workdir` if still free,
        else a free one. The controller listens on a second free port.
    cache_dir : Path, optional
        Where the jars are fetched; default `default_cache_dir()`.
    """

    def __init__(self, workdir: Path, port: int | None = None, cache_dir: Path | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.cache_dir = cache_dir
        self.properties = self.workdir / PROPERTIES_FILE
        self.data_dir = self.workdir / "data"
        self.pid_file = self.workdir / PID_FILE
        self.console_log = self.workdir / CONSOLE_LOG
        self.server_log = self.workdir / SERVER_LOG
        earlier = self._earlier_ports()
        if self.running_pid() is not None and earlier:  # a live broker of this workdir keeps its ports
            self.port, self.controller_port = earlier
        elif port is None and earlier and _port_free(earlier[0]) and _port_free(earlier[1]):
            self.port, self.controller_port = earlier
        elif port is not None and earlier and earlier[0] == port and _port_free(earlier[1]):
            self.port, self.controller_port = earlier
        else:
            self.port = port or _free_port()
            self.controller_port = _free_port()
            while self.controller_port == self.port:
                self.controller_port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._cds_partial = self.workdir / "classes.jsa.part"
        self._log_offset = 0

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:<port>`, for the clients' `bootstrap.servers`."""
        return f"127.0.0.1:{self.port}"

    def fetch(self) -> Path:
        """Download the jars with Maven if needed; return the libs folder."""
        return fetch_libs(self.cache_dir)

    def running_pid(self) -> int | None:
        """The pid of this workdir's broker if it is alive, from the pid file."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:  # guard against pid reuse: the process must be a Kafka JVM on our properties file
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if b"kafka.Kafka" not in cmdline or str(self.properties).encode() not in cmdline:
            return None
        return pid

    def start(self, timeout: float = 60) -> None:
        """Format storage if new, launch the JVM and wait until it answers metadata requests.

        Raises
        ------
        KafkaBrokerError
            If java or the jars are missing, a broker of this workdir already runs, a port is taken, or the
            broker exits or does not answer within `timeout` seconds (the message then quotes its logs).
        """
        if (pid := self.running_pid()) is not None:
            raise KafkaBrokerError(f"a broker of {self.workdir} already runs (pid {pid}) on {self.bootstrap_servers}")
        for port in (self.port, self.controller_port):
            freed = time.monotonic() + PORT_RELEASE_WAIT_S  # a JVM that just stopped may still be exiting
            while not _port_free(port):
                if time.monotonic() > freed:
                    raise KafkaBrokerError(f"port {port} on 127.0.0.1 is already in use")
                time.sleep(0.1)
        java = _java()
        libs = self.fetch()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server_log.parent.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(self._server_properties())
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(LOG4J2.format(path=self.server_log))
        base = [java, *HEAP_OPTS, *JVM_OPTS, f"-Dlog4j2.configurationFile={log4j}",
                f"-Dkafka.logs.dir={self.server_log.parent}", "-cp", f"{libs}/*"]
        started = time.monotonic()
        self._log_offset = self.server_log.stat().st_size if self.server_log.exists() else 0
        if not (self.data_dir / "meta.properties").exists():
            self._format(base)
        with self.console_log.open("ab") as console:
            self._process = subprocess.Popen(
                [*base, *self._cds_options(java), "kafka.Kafka", str(self.properties)], cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pid_file.write_text(f"{self._process.pid}\n")
        _started.append(self)
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.kill()
            raise
        log.info("Kafka broker up on %s in %.1f s (pid %d)", self.bootstrap_servers,
                 time.monotonic() - started, self._process.pid)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the broker (a clean shutdown), SIGKILL it after `timeout` seconds; no-op if not running."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL the broker at once, like a crash.

        Written data stays in the OS page cache; the next start recovers the logs as after any unclean
        shutdown and waits about 5 s (`broker.session.timeout.ms`) for the old registration to expire.
        """
        self._signal(signal.SIGKILL, 10)

    def restart(self, timeout: float = 60) -> None:
        """Stop, then start again on the same ports and data."""
        self.stop()
        self.start(timeout)

    def ensure_topics(self, names: Iterable[str], partitions: int = TOPIC_PARTITIONS, timeout: float = 30) -> None:
        """Create the topics that do not exist yet (replication 1) and wait until all have leaders.

        Raises
        ------
        KafkaBrokerError
            If creation fails for another reason than "already exists", or an existing topic has fewer
            than `partitions` partitions.
        """
        names = list(dict.fromkeys(names))
        if not names:
            return
        admin = self._admin()
        try:
            problem = _ensure_topics(admin, names, partitions, timeout)
        finally:
            del admin  # not kept alive by a traceback: a client outliving the broker logs connection errors
        if problem:
            raise KafkaBrokerError(problem)

    def _admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 3})

    def _earlier_ports(self) -> tuple[int, int] | None:
        try:
            lines = self.properties.read_text().splitlines()
        except OSError:
            return None
        ports = {}
        for line in lines:
            if line.startswith("listeners="):
                for listener in line.split("=", 1)[1].split(","):
                    name, _, address = listener.partition("://")
                    ports[name] = int(address.rsplit(":", 1)[1])
        if "PLAINTEXT" in ports and "CONTROLLER" in ports:
            return ports["PLAINTEXT"], ports["CONTROLLER"]
        return None

    def _server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(TOPIC_PARTITIONS),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a crash (SIGKILL) the restarted broker waits for its old registration's session to
            # expire before it is unfenced: 5 s instead of the default 9 s.
            "broker.session.timeout.ms": "5000",
            "broker.heartbeat.interval.ms": "1000",
            # Sized for a 2-core development machine.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _cds_options(self, java: str) -> list[str]:
        """Class-data sharing: reuse the archive of loaded classes, or record one at this JVM's exit.

        The archive (about 50 MB, in the libs folder) roughly halves the JVM's start-up time. It is
        keyed by the java binary, so a different JDK records its own; a stale or broken one is ignored by
        the JVM. Recording happens during a clean stop (it adds a few seconds to that first stop).
        """
        archive, quiet = self._cds_archive(java), "-Xlog:cds*=error"
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}", quiet]
        self._cds_partial.unlink(missing_ok=True)
        return [f"-XX:ArchiveClassesAtExit={self._cds_partial}", quiet]

    def _cds_archive(self, java: str) -> Path:
        binary = Path(java).resolve()
        stat = binary.stat()
        key = hashlib.sha256(f"{binary}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        return _libs_dir(self.cache_dir) / f"classes-{key}.jsa"  # replaced with the jars it describes

    def _keep_cds_archive(self, clean: bool) -> None:
        """After the JVM exited: keep the archive it recorded at a clean exit, drop a partial one."""
        partial = self._cds_partial
        if clean and partial.is_file() and partial.stat().st_size > 0:
            with contextlib.suppress(KafkaBrokerError, OSError):
                os.replace(partial, self._cds_archive(_java()))
        partial.unlink(missing_ok=True)

    def _format(self, base: list[str]) -> None:
        command = [*base, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(self.properties)]
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        with self.console_log.open("a") as console:
            console.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise KafkaBrokerError(f"formatting {self.data_dir} failed (exit {done.returncode}):\n"
                                   + "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:]))

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None
        cluster_id = self._cluster_id_on_disk()
        while True:
            if self._process.poll() is not None:
                raise KafkaBrokerError(f"the broker exited with code {self._process.returncode}\n{self._logs()}")
            if _port_open(self.port):
                try:
                    metadata = self._admin().list_topics(timeout=max(1.0, min(5.0, deadline - time.monotonic())))
                except KafkaException:
                    metadata = None
                if metadata is not None and metadata.cluster_id != cluster_id:
                    raise KafkaBrokerError(f"another Kafka cluster ({metadata.cluster_id}) answers on "
                                           f"{self.bootstrap_servers}, not ours ({cluster_id})")
                if metadata is not None and 1 in metadata.brokers:
                    return
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"the broker did not answer on {self.bootstrap_servers} in time\n"
                                       f"{self._logs()}")
            time.sleep(0.1)

    def _cluster_id_on_disk(self) -> str | None:
        try:
            lines = (self.data_dir / "meta.properties").read_text().splitlines()
        except OSError:
            return None
        return next((line.split("=", 1)[1].strip() for line in lines if line.startswith("cluster.id=")), None)

    def _logs(self) -> str:
        """The errors this start logged (each with its next line, the exception), then the logs' last lines."""
        try:
            with self.server_log.open("rb") as handle:
                handle.seek(self._log_offset)
                lines = handle.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        errors = [f"{line}\n{lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith('[') else ''}"
                  for i, line in enumerate(lines) if "] ERROR " in line or "] FATAL " in line][:6]
        return (f"--- first errors in {self.server_log} ---\n" + "\n".join(errors) + "\n"
                f"--- last lines of {self.server_log} ---\n" + "\n".join(lines[-15:]) + "\n"
                f"--- last lines of {self.console_log} ---\n{_tail(self.console_log, 10)}")

    def _signal(self, signum: signal.Signals, timeout: float) -> None:
        pid = self.running_pid()
        if pid is None and self._process is not None and self._process.poll() is None:
            pid = self._process.pid  # our child, whatever happened to the pid file
        if pid is None:
            self._reap()
            self.pid_file.unlink(missing_ok=True)
            self._keep_cds_archive(clean=False)
            self._detach()
            return
        os.kill(pid, signum)
        clean = signum != signal.SIGKILL
        if not self._wait_gone(pid, timeout) and clean:
            log.warning("Kafka broker pid %d ignored SIGTERM for %.0f s: killing it", pid, timeout)
            clean = False
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 10)
        if _alive(pid):
            raise KafkaBrokerError(f"Kafka broker pid {pid} did not exit")
        if self._process is not None and self._process.pid == pid:
            self._process.wait(5)  # our own child: reap the zombie
        self.pid_file.unlink(missing_ok=True)
        self._process = None
        self._keep_cds_archive(clean)
        self._detach()

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._reap()
            if not _alive(pid):
                return True
            time.sleep(0.05)
        return False

    def _detach(self) -> None:
        """Leave the broker running when this interpreter exits."""
        while self in _started:
            _started.remove(self)

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None


def main(argv: list[str] | None = None) -> int:
    """`python -m coelho.adapters.kafka_broker {fetch,start,stop,status}`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m coelho.adapters.kafka_broker", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--workdir", type=Path, default=default_cache_dir() / "kafka-broker",
                        help="data, logs and pid file (default: <cache>/kafka-broker)")
    parser.add_argument("--port", type=int, default=None, help="client port (default: the previous one, or free)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for start or stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.command == "fetch":
            print(fetch_libs())
            return 0
        broker = KafkaBroker(args.workdir, port=args.port)
        pid = broker.running_pid()
        if args.command == "status":
            print(f"running pid {pid} on {broker.bootstrap_servers}" if pid else f"not running ({broker.workdir})")
            return 0 if pid else 3
        if args.command == "stop":
            broker.stop(args.timeout)
            print("stopped" if pid else "not running")
            return 0
        if pid is None:
            broker.start(args.timeout)
            broker._detach()
        print(broker.bootstrap_servers)
        return 0
    except KafkaBrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


@atexit.register
def _stop_started() -> None:
    for broker in list(_started):
        with contextlib.suppress(Exception):
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
