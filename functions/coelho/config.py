"""Settings: the only module that reads the environment.

Every knob has a sensible default so that a function runs with no configuration at all
(embedded Valkey, local data folder). `Settings.from_env()` fails with the variable named
when a value cannot be parsed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["ConfigError", "Settings", "ENVIRONMENT"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of functions, producers and the local launcher."""

    redis_url: str | None = None
    data_dir: Path = Path(".coelho")
    signing_key: bytes | None = None
    model_preset: str = "default"
    checkpoint_every: int = 5000
    checkpoint_seconds: float = 30.0
    lease_seconds: float = 10.0
    dedup_ttl_seconds: int = 7 * 24 * 3600
    max_event_bytes: int = 64 * 1024
    predict_refresh_ms: int = 200
    key_prefix: str = "coelho"
    log_level: str = "INFO"
    service: str | None = None
    revision: str | None = None
    sink: str | None = None
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    cache_dir: Path | None = None
    functions_dir: Path | None = None
    port: int = 8080
    delta_root: str | None = None
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    sql_timeout_seconds: float = 10.0
    sql_memory_limit: str = "1GB"
    sql_threads: int = 2
    sql_max_rows: int = 100_000
    sql_refresh_ms: int = 1000
    sql_load_max_rows: int = 1_000_000
    mlflow: bool = True
    mlflow_tracking_uri: str | None = None
    mlflow_log_every: int = 1000
    mlflow_log_seconds: float = 10.0
    register_every: int = 10
    stop_mlflow_seconds: float = 10.0
    spark_trigger: str = "5 seconds"
    spark_checkpoint_root: str | None = None
    sink_batch_rows: int = 500
    sink_batch_ms: int = 1000
    sink_compact_every: int = 100
    sink_recycle_commits: int = 50_000
    sink_dedup_seconds: int = 3600
    drift_sink: str | None = None
    sink_retention_hours: float = 2.0
    delta_checkpoint_every: int = 100
    delta_log_retention_hours: float = 2.0
    delta_row_group_rows: int = 16_384
    ingest_batch_rows: int = 50_000
    ingest_batch_ms: int = 1000
    train_gap_seconds: float | None = None
    train_min_rows: int = 1000
    train_iterations: int = 1000
    train_early_stopping: int = 50
    train_k_range: tuple[int, int] = (2, 10)
    train_compare_rows: int = 20_000
    train_threads: int | None = None
    train_warm_start: bool = True
    function_url_template: str = "http://127.0.0.1:{port}"
    function_urls: tuple[tuple[str, str], ...] = ()
    ui_password: str | None = None
    ui_storage_secret: str | None = None
    ui_links: tuple[tuple[str, str], ...] = ()
    ui_tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    ui_timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (var, cast) in ENVIRONMENT.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = cast(raw)
            except ValueError as exc:
                raise ConfigError(f"{var}={raw!r} is invalid: {exc}") from None
        return cls(**values)

    def resolved_signing_key(self) -> bytes:
        """The HMAC key: COELHO_SIGNING_KEY, else a per-data-dir development key (created once)."""
        if self.signing_key:
            return self.signing_key
        path = self.data_dir / "signing.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    def delta_uri(self, use_case: str) -> str:
        """The Delta table of `use_case`: COELHO_DELTA_ROOT/<use_case>, else COELHO_DATA_DIR/delta/<use_case>."""
        if self.delta_root:
            return f"{self.delta_root.rstrip('/')}/{use_case}"
        return str((self.data_dir / "delta" / use_case).resolve())

    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI, else a sqlite database under COELHO_DATA_DIR/mlflow."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow' / 'mlflow.db').resolve()}"

    def artifact_root(self) -> Path:
        """Where a local (sqlite) tracking store keeps artifacts: COELHO_DATA_DIR/mlflow/artifacts."""
        return (self.data_dir / "mlflow" / "artifacts").resolve()
    def spark_checkpoint(self, use_case: str) -> str:
        """The Spark job's checkpoint of `use_case`: COELHO_SPARK_CHECKPOINT_ROOT/<use_case>, else
        COELHO_DATA_DIR/checkpoints/spark/<use_case>."""
        if self.spark_checkpoint_root:
            return f"{self.spark_checkpoint_root.rstrip('/')}/{use_case}"
        return str((self.data_dir / "checkpoints" / "spark" / use_case).resolve())

    def function_url(self, name: str, port: int | None = None) -> str | None:
        """Where function `name` answers: its COELHO_FUNCTION_URLS entry, else COELHO_FUNCTION_URL_TEMPLATE.

        The template's `{name}` is the function's name and `{port}` its `coelho up` port (`port`); None when
        the template needs a port and there is none (a function this checkout does not run locally).

        >>> Settings(function_url_template="http://{name}.coelho.svc.cluster.local").function_url("sql")
        'http://sql.coelho.svc.cluster.local'
        >>> settings = Settings(function_urls=(("sql", "http://10.0.0.7:9000/"),))
        >>> settings.function_url("sql", 8087), settings.function_url("tfd-predict", 8082), settings.function_url("x")
        ('http://10.0.0.7:9000', 'http://127.0.0.1:8082', None)
        """
        overrides = dict(self.function_urls)
        if name in overrides:
            return overrides[name].rstrip("/")
        if port is None and "{port}" in self.function_url_template:
            return None
        return self.function_url_template.format(name=name, port=port).rstrip("/")


def _positive(cast: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = cast(raw)
        if value <= 0:  # type: ignore[operator]
            raise ValueError("must be > 0")
        return value

    return parse


def _non_negative(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be >= 0")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _k_range(raw: str) -> tuple[int, int]:
    """`2-10` → (2, 10): the K of KMeans tried by batch training."""
    low, sep, high = raw.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError("must be LOW-HIGH, e.g. 2-10")
    bounds = int(low), int(high)
    if not 2 <= bounds[0] <= bounds[1] <= 50:
        raise ValueError("must satisfy 2 <= LOW <= HIGH <= 50")
    return bounds


def _pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """`name=value` items separated by commas.

    >>> _pairs("MLflow=http://127.0.0.1:8089, Grafana=http://grafana:3000")
    (('MLflow', 'http://127.0.0.1:8089'), ('Grafana', 'http://grafana:3000'))
    """
    items = [item.strip() for item in raw.split(",") if item.strip()]
    pairs = tuple(tuple(part.strip() for part in item.split("=", 1)) for item in items)
    if any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise ValueError("must be comma-separated name=value items")
    return pairs  # type: ignore[return-value]


def _url_template(raw: str) -> str:
    """A function URL template: placeholders `{name}` and `{port}` only, at least one of them."""
    try:
        raw.format(name="f", port=1)
    except (KeyError, IndexError, ValueError):
        raise ValueError("may only use the placeholders {name} and {port}") from None
    if "{name}" not in raw and "{port}" not in raw:
        raise ValueError("must contain {name} or {port}")
    return raw


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("1", "0", "true", "false", "on", "off", "yes", "no"):
        raise ValueError("must be on/off (1/0, true/false, yes/no)")
    return value in ("1", "true", "on", "yes")


#: Settings field → (environment variable, parser). The README's table mirrors this.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "redis_url": ("REDIS_URL", str),
    "data_dir": ("COELHO_DATA_DIR", Path),
    "signing_key": ("COELHO_SIGNING_KEY", str.encode),
    "model_preset": ("COELHO_MODEL_PRESET", str),
    "checkpoint_every": ("COELHO_CHECKPOINT_EVERY", _positive(int)),
    "checkpoint_seconds": ("COELHO_CHECKPOINT_SECONDS", _positive(float)),
    "lease_seconds": ("COELHO_LEASE_SECONDS", _positive(float)),
    "dedup_ttl_seconds": ("COELHO_DEDUP_TTL_SECONDS", _positive(int)),
    "max_event_bytes": ("COELHO_MAX_EVENT_BYTES", _positive(int)),
    "predict_refresh_ms": ("COELHO_PREDICT_REFRESH_MS", _positive(int)),
    "key_prefix": ("COELHO_KEY_PREFIX", str),
    "log_level": ("COELHO_LOG_LEVEL", str),
    "service": ("K_SERVICE", str),
    "revision": ("K_REVISION", str),
    "sink": ("K_SINK", str),
    "kafka_bootstrap_servers": ("KAFKA_BOOTSTRAP_SERVERS", str),
    "cache_dir": ("COELHO_CACHE_DIR", Path),
    "functions_dir": ("COELHO_FUNCTIONS_DIR", Path),
    "port": ("PORT", _positive(int)),
    "delta_root": ("COELHO_DELTA_ROOT", str),
    "s3_endpoint_url": ("AWS_ENDPOINT_URL", str),
    "s3_access_key_id": ("AWS_ACCESS_KEY_ID", str),
    "s3_secret_access_key": ("AWS_SECRET_ACCESS_KEY", str),
    "sql_timeout_seconds": ("COELHO_SQL_TIMEOUT_S", _positive(float)),
    "sql_memory_limit": ("COELHO_SQL_MEMORY_LIMIT", str),
    "sql_threads": ("COELHO_SQL_THREADS", _positive(int)),
    "sql_max_rows": ("COELHO_SQL_MAX_ROWS", _positive(int)),
    "sql_refresh_ms": ("COELHO_SQL_REFRESH_MS", _positive(int)),
    "sql_load_max_rows": ("COELHO_SQL_LOAD_MAX_ROWS", _positive(int)),
    "mlflow": ("COELHO_MLFLOW", _flag),
    "mlflow_tracking_uri": ("MLFLOW_TRACKING_URI", str),
    "mlflow_log_every": ("COELHO_MLFLOW_LOG_EVERY", _positive(int)),
    "mlflow_log_seconds": ("COELHO_MLFLOW_LOG_SECONDS", _positive(float)),
    "register_every": ("COELHO_REGISTER_EVERY", _positive(int)),
    "stop_mlflow_seconds": ("COELHO_STOP_MLFLOW_SECONDS", _positive(float)),
    "spark_trigger": ("COELHO_SPARK_TRIGGER", str),
    "spark_checkpoint_root": ("COELHO_SPARK_CHECKPOINT_ROOT", str),
    "sink_batch_rows": ("COELHO_SINK_BATCH_ROWS", _positive(int)),
    "sink_batch_ms": ("COELHO_SINK_BATCH_MS", _positive(int)),
    "sink_compact_every": ("COELHO_SINK_COMPACT_EVERY", _positive(int)),
    "sink_recycle_commits": ("COELHO_SINK_RECYCLE_COMMITS", _non_negative_int),
    "sink_dedup_seconds": ("COELHO_SINK_DEDUP_SECONDS", _positive(int)),
    "drift_sink": ("COELHO_DRIFT_SINK", str),
    "sink_retention_hours": ("COELHO_SINK_RETENTION_HOURS", _positive(float)),
    "delta_checkpoint_every": ("COELHO_DELTA_CHECKPOINT_EVERY", _positive(int)),
    "delta_log_retention_hours": ("COELHO_DELTA_LOG_RETENTION_HOURS", _positive(float)),
    "delta_row_group_rows": ("COELHO_DELTA_ROW_GROUP_ROWS", _positive(int)),
    "ingest_batch_rows": ("COELHO_INGEST_BATCH_ROWS", _positive(int)),
    "ingest_batch_ms": ("COELHO_INGEST_BATCH_MS", _positive(int)),
    "train_gap_seconds": ("COELHO_TRAIN_GAP_SECONDS", _non_negative),
    "train_min_rows": ("COELHO_TRAIN_MIN_ROWS", _positive(int)),
    "train_iterations": ("COELHO_TRAIN_ITERATIONS", _positive(int)),
    "train_early_stopping": ("COELHO_TRAIN_EARLY_STOPPING", _positive(int)),
    "train_k_range": ("COELHO_TRAIN_K_RANGE", _k_range),
    "train_compare_rows": ("COELHO_TRAIN_COMPARE_ROWS", _positive(int)),
    "train_threads": ("COELHO_TRAIN_THREADS", _positive(int)),
    "train_warm_start": ("COELHO_TRAIN_WARM_START", _flag),
    "function_url_template": ("COELHO_FUNCTION_URL_TEMPLATE", _url_template),
    "function_urls": ("COELHO_FUNCTION_URLS", _pairs),
    "ui_password": ("COELHO_UI_PASSWORD", str),
    "ui_storage_secret": ("COELHO_UI_STORAGE_SECRET", str),
    "ui_links": ("COELHO_UI_LINKS", _pairs),
    "ui_tile_url": ("COELHO_UI_TILE_URL", str),
    "ui_timeout_seconds": ("COELHO_UI_TIMEOUT_S", _positive(float)),
}
assert set(ENVIRONMENT) == {f.name for f in fields(Settings)}
