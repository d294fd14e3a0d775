"""A real Prometheus on this machine: Debian's binary, the platform's alert rules, a generated scrape config.

The binaries (`prometheus`, `promtool`) come from Debian's `prometheus` package, downloaded with
`apt-get download` and unpacked with `dpkg-deb -x` into the cache (`COELHO_CACHE_DIR/prometheus`):
installing the package would run its postinst, which starts a system service. The rules are the `spec`
of the repository's PrometheusRule (`infra/observability/rules/coelho-alerts.yaml`), so the local
Prometheus evaluates exactly what the cluster's does. `make up PROMETHEUS=1` and the tests use this.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from coelho.adapters.maven import REPO_ROOT, default_cache_dir

__all__ = ["ALERT_RULES", "PrometheusServer", "ScrapeTarget", "fetch_prometheus", "promtool", "write_rule_file"]

log = logging.getLogger(__name__)

ALERT_RULES = REPO_ROOT / "infra" / "observability" / "rules" / "coelho-alerts.yaml"


def fetch_prometheus(cache_dir: Path | None = None) -> Path:
    """The folder holding Debian's prometheus package unpacked (`usr/bin/prometheus`, `usr/bin/promtool`)."""
    root = (cache_dir or default_cache_dir()) / "prometheus"
    if (root / "usr" / "bin" / "prometheus").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix="prometheus-") as tmp:
        download = ["apt-get", "download", "prometheus"]
        if subprocess.run(download, cwd=tmp, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            subprocess.run(download, cwd=tmp, check=True, capture_output=True)
        [deb] = Path(tmp).glob("prometheus_*.deb")
        unpacked = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        if root.exists():
            shutil.rmtree(root)
        unpacked.rename(root)
    log.info("Debian's prometheus unpacked into %s", root)
    return root


def promtool(cache_dir: Path | None = None) -> Path:
    """Path of `promtool` (fetched on first use)."""
    return fetch_prometheus(cache_dir) / "usr" / "bin" / "promtool"


def write_rule_file(path: Path, manifest: Path = ALERT_RULES, interval: str | None = None) -> Path:
    """Write the `spec` of a PrometheusRule manifest as a plain Prometheus rule file; returns `path`.

    `interval` replaces every group's evaluation interval (tests evaluate every second or two).
    """
    spec = yaml.safe_load(manifest.read_text())["spec"]
    if interval is not None:
        for group in spec["groups"]:
            group["interval"] = interval
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@dataclass(frozen=True)
class ScrapeTarget:
    """One local process to scrape: `address` is host:port; `labels` become target labels."""

    job: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PrometheusServer:
    """One Prometheus process scraping `targets` and evaluating the platform's rules, on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    targets: Sequence[ScrapeTarget]
    scrape_interval: str = "5s"
    evaluation_interval: str = "5s"
    cache_dir: Path | None = None
    rules: Path = ALERT_RULES
    rule_interval: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """The prometheus.yml: one scrape job per target job, rules from the PrometheusRule's spec."""
        jobs: dict[str, list[ScrapeTarget]] = {}
        for target in self.targets:
            jobs.setdefault(target.job, []).append(target)
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.evaluation_interval},
            "rule_files": [str(self.data_dir / "rules.yaml")],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [t.address], "labels": dict(t.labels)}
                                                     for t in targets]}
                for job, targets in jobs.items()
            ],
        }

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        """Write the config and rules, start Prometheus and wait until it is ready."""
        root = fetch_prometheus(self.cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_rule_file(self.data_dir / "rules.yaml", self.rules, self.rule_interval)
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        command = [
            str(root / "usr" / "bin" / "prometheus"), f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.local-assets={root / 'usr' / 'share' / 'prometheus' / 'web'}",
            f"--web.console.templates={root / 'etc' / 'prometheus' / 'consoles'}",
            f"--web.console.libraries={root / 'etc' / 'prometheus' / 'console_libraries'}",
            "--web.enable-lifecycle", "--log.level=warn",
        ]
        with open(self.data_dir / "prometheus.log", "ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.url + "/-/ready", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_text = (self.data_dir / "prometheus.log").read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"Prometheus did not start: {log_text}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM the process group (by pid), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/`path`; the `data` of a successful answer."""
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} {params}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (or scalar)."""
        return self.api("query", query=expr)["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), with their labels and state."""
        return self.api("alerts")["alerts"]
