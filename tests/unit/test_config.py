"""Settings from the environment."""

from __future__ import annotations

import pytest

from coelho.config import ConfigError, Settings


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.redis_url is None and settings.max_event_bytes == 65536


def test_values_are_cast_and_bad_values_named():
    settings = Settings.from_env({"COELHO_CHECKPOINT_EVERY": "10", "REDIS_URL": "redis://x:1"})
    assert settings.checkpoint_every == 10 and settings.redis_url == "redis://x:1"
    with pytest.raises(ConfigError, match="COELHO_CHECKPOINT_EVERY"):
        Settings.from_env({"COELHO_CHECKPOINT_EVERY": "-3"})
    with pytest.raises(ConfigError, match="COELHO_LEASE_SECONDS"):
        Settings.from_env({"COELHO_LEASE_SECONDS": "soon"})


def test_development_signing_key_is_created_once(tmp_path):
    settings = Settings(data_dir=tmp_path)
    key = settings.resolved_signing_key()
    assert key == settings.resolved_signing_key() and len(key) == 64
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
    assert Settings(signing_key=b"k").resolved_signing_key() == b"k"


def test_mlflow_settings(tmp_path):
    settings = Settings.from_env({"COELHO_MLFLOW": "off", "COELHO_DATA_DIR": str(tmp_path)})
    assert settings.mlflow is False
    assert settings.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert Settings.from_env({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}).tracking_uri() == "http://mlflow:5000"
    with pytest.raises(ConfigError, match="COELHO_MLFLOW"):
        Settings.from_env({"COELHO_MLFLOW": "maybe"})


def test_training_settings():
    settings = Settings.from_env({"COELHO_TRAIN_GAP_SECONDS": "0", "COELHO_TRAIN_K_RANGE": "3-7",
                                  "COELHO_TRAIN_THREADS": "2"})
    assert (settings.train_gap_seconds, settings.train_k_range, settings.train_threads) == (0.0, (3, 7), 2)
    assert Settings.from_env({}).train_gap_seconds is None  # each use case's default then
    for variable, value in (("COELHO_TRAIN_K_RANGE", "1-5"), ("COELHO_TRAIN_K_RANGE", "9-3"),
                            ("COELHO_TRAIN_K_RANGE", "five"), ("COELHO_TRAIN_GAP_SECONDS", "-1"),
                            ("COELHO_TRAIN_MIN_ROWS", "0")):
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env({variable: value})


def test_function_urls_from_a_template_with_overrides():
    local = Settings.from_env({})
    assert local.function_url("tfd-predict", 8082) == "http://127.0.0.1:8082"
    cluster = Settings.from_env({"COELHO_FUNCTION_URL_TEMPLATE": "http://{name}.coelho.svc.cluster.local",
                                 "COELHO_FUNCTION_URLS": "sql=http://sql.example:9000/, train=http://t:1"})
    assert cluster.function_url("eta-predict") == "http://eta-predict.coelho.svc.cluster.local"
    assert cluster.function_url("sql", 8087) == "http://sql.example:9000"
    assert local.function_url("train") is None  # no port to fill in: not served locally
    with pytest.raises(ConfigError, match="COELHO_FUNCTION_URL_TEMPLATE"):
        Settings.from_env({"COELHO_FUNCTION_URL_TEMPLATE": "http://{name}.{namespace}"})
    with pytest.raises(ConfigError, match="COELHO_FUNCTION_URLS"):
        Settings.from_env({"COELHO_FUNCTION_URLS": "sql"})
    with pytest.raises(ConfigError, match="COELHO_UI_LINKS"):
        Settings.from_env({"COELHO_UI_LINKS": "=http://x"})
