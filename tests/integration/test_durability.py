"""Checkpoints + WAL in a real Valkey: restart equals never stopping; tampered bytes are refused."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle

import pytest

from coelho.adapters.redis_state import RedisState
from coelho.core import USE_CASES
from coelho.core.signing import TamperedError
from coelho.runtime.learner import Learner
from coelho.runtime.predictor import Predictor
from support import reference, stream


@pytest.fixture
def make_learner(settings, redis_client):
    made: list[Learner] = []

    def build(key: str, **changes) -> Learner:
        learner = Learner(USE_CASES[key], RedisState(redis_client, settings.key_prefix, key),
                          dataclasses.replace(settings, **changes))
        made.append(learner)
        return learner

    yield build
    for learner in made:
        learner.close()


@pytest.mark.parametrize("key", ["tfd", "eta", "ecci"])
def test_restart_from_checkpoint_and_wal_equals_reference(make_learner, redis_client, key):
    events = stream(key, 300, seed=5)
    first = make_learner(key, checkpoint_every=64)
    for i, payload in enumerate(events[:250]):
        first.handle("/src", str(i), payload)
    first.stopping.set()
    redis_client.delete(first.state.key("lease"))  # crash: no final checkpoint, lease expires
    second = make_learner(key, checkpoint_every=64)
    for i, payload in enumerate(events):  # the sender re-sends everything: the first 250 are duplicates
        second.handle("/src", str(i), payload)
    second.drain()
    assert second.checkpoint_seq >= 192
    assert second.replica.seq == 300
    expected = reference(key, events)
    assert second.replica.model.status()["metrics"] == expected.metrics.report()
    probe = stream(key, 5, seed=77)
    assert [second.replica.model.predict(p) for p in probe] == [expected.predict(p) for p in probe]


def test_wal_is_trimmed_behind_checkpoints(make_learner, redis_client):
    learner = make_learner("ecci", checkpoint_every=50)
    for i, payload in enumerate(stream("ecci", 230, seed=2)):
        learner.handle("/src", str(i), payload)
    learner.drain()
    assert learner.checkpoint_seq == 200
    assert redis_client.xlen(learner.state.key("wal")) == 230 - 150  # keeps one interval for predictors


def test_predictor_jumps_to_checkpoint_when_wal_is_trimmed(make_learner, settings, redis_client):
    learner = make_learner("tfd", checkpoint_every=20)
    events = stream("tfd", 100, seed=4)
    predictor = Predictor(USE_CASES["tfd"], RedisState(redis_client, settings.key_prefix, "tfd"), settings)
    learner.handle("/src", "0", events[0])
    predictor.refresh()
    for i, payload in enumerate(events[1:], start=1):
        learner.handle("/src", str(i), payload)
    learner.drain()
    predictor.refresh()
    assert predictor.replica.seq == 100
    assert predictor.replica.model.predict(events[0]) == reference("tfd", events).predict(events[0])


def test_tampered_checkpoint_is_refused(make_learner, redis_client):
    learner = make_learner("tfd")
    learner.handle("/src", "0", stream("tfd", 1)[0])
    learner.drain()
    key = learner.state.key("ckpt")
    blob = redis_client.get(key)
    evil = blob[:-8] + pickle.dumps("x")[-8:]
    redis_client.set(key, evil)
    with pytest.raises(TamperedError, match="refusing to unpickle"):
        learner.replica.load_checkpoint()


def test_wrong_key_is_refused(make_learner, redis_client, settings):
    make_learner("eta").handle("/src", "0", stream("eta", 1)[0])
    other = dataclasses.replace(settings, signing_key=b"another-key")
    predictor = Predictor(USE_CASES["eta"], RedisState(redis_client, settings.key_prefix, "eta"), other)
    with pytest.raises(TamperedError):
        predictor.refresh()


def test_a_redis_that_lost_its_last_writes_is_noticed_and_the_learner_recovers_from_what_it_holds(
        make_learner, redis_client, settings):
    events = stream("eta", 60, seed=8)
    learner = make_learner("eta", checkpoint_every=20)
    for i, payload in enumerate(events[:50]):
        learner.handle("/src", str(i), payload)
    learner.drain()
    # What a machine crash with `appendfsync everysec` can do: the last acknowledged appends are gone.
    state = learner.state
    kept_log = redis_client.xrange(state.key("wal"), max="44-1")
    redis_client.delete(state.key("wal"))  # the log as the replayed append-only file rebuilds it
    for entry_id, fields in kept_log:
        redis_client.xadd(state.key("wal"), fields, id=entry_id)
    redis_client.set(state.key("seq"), 44)
    for i in range(44, 50):  # their dedup markers went with them
        digest = hashlib.blake2b(f"/src\x00{i}".encode(), digest_size=16).hexdigest()
        assert redis_client.delete(state.key(f"seen:{digest}")) == 1
    for i, payload in enumerate(events[50:], start=50):
        learner.handle("/src", str(i), payload)
    learner.drain()
    assert learner.replica.seq == 54  # 44 kept + the 10 new ones, each once
    kept = events[:44] + events[50:]
    assert learner.replica.model.status()["metrics"] == reference("eta", kept).metrics.report()
