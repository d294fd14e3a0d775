"""TFD: persistent card holders, configurable fraud rate, correlated fraud signals."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coelho.core import tfd
from coelho.producers.tfd import TfdGenerator

Events = Callable[..., list[dict[str, Any]]]


def _share(events: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> float:
    return sum(map(test, events)) / len(events)


@pytest.mark.parametrize("fraud_rate", [0.01, 0.05, 0.2])
def test_fraud_rate_is_near_the_configured_one(events: Events, fraud_rate: float) -> None:
    n = 20_000
    labels = [e["is_fraud"] for e in events("tfd", n, fraud_rate=fraud_rate)]
    tolerance = 4 * (fraud_rate * (1 - fraud_rate) / n) ** 0.5
    assert abs(sum(labels) / n - fraud_rate) < tolerance


def test_zero_fraud_rate_emits_no_fraud(events: Events) -> None:
    assert not any(e["is_fraud"] for e in events("tfd", 2000, fraud_rate=0.0))


@pytest.fixture(scope="module")
def fraud_heavy() -> list[dict[str, Any]]:
    """40k transactions, 5 % of them fraudulent."""
    generator = TfdGenerator(seed=4, start=datetime(2026, 3, 2, tzinfo=UTC), fraud_rate=0.05)
    return [next(generator) for _ in range(40_000)]


def test_fraud_carries_the_original_signals(fraud_heavy: list[dict[str, Any]]) -> None:
    stream = fraud_heavy
    fraud = [e for e in stream if e["is_fraud"]]
    legit = [e for e in stream if not e["is_fraud"]]
    assert _share(fraud, lambda e: not e["cvv_provided"]) == pytest.approx(0.43, abs=0.05)
    assert _share(legit, lambda e: not e["cvv_provided"]) == pytest.approx(0.005, abs=0.003)
    assert _share(fraud, lambda e: not e["billing_address_match"]) == pytest.approx(0.37, abs=0.05)
    assert _share(legit, lambda e: not e["billing_address_match"]) == pytest.approx(0.02, abs=0.005)
    assert all(1 <= e["amount"] <= 50 or 300 <= e["amount"] <= 6000 for e in fraud)
    risky = {"electronics", "luxury_items", "digital_goods", "gambling"}
    fraud_risky = _share(fraud, lambda e: e["product_category"] in risky)
    assert fraud_risky > 0.6
    assert fraud_risky > 1.5 * _share(legit, lambda e: e["product_category"] in risky)
    assert _share(fraud, lambda e: e["payment_method"] == "crypto") > 5 * _share(
        legit, lambda e: e["payment_method"] == "crypto")
    assert _share(fraud, lambda e: e["account_age_days"] < 30) > 3 * _share(
        legit, lambda e: e["account_age_days"] < 30)
    night = lambda e: tfd.features(e)["night"] == 1.0  # noqa: E731
    assert _share(fraud, night) > 3 * _share(legit, night)


def test_fraud_comes_in_bursts_of_card_tests_then_cash_outs(
    fraud_heavy: list[dict[str, Any]],
) -> None:
    # A campaign works one account from one place (its coordinates are drawn once).
    by_campaign: dict[tuple[str, float, float], list[float]] = defaultdict(list)
    for event in fraud_heavy:
        if event["is_fraud"]:
            place = event["location"]
            by_campaign[event["user_id"], place["lat"], place["lon"]].append(event["amount"])
    bursts = [amounts for amounts in by_campaign.values() if len(amounts) > 1]
    assert len(bursts) > len(by_campaign) / 2
    for amounts in bursts:
        large = [i for i, amount in enumerate(amounts) if amount >= 300]
        small = [i for i, amount in enumerate(amounts) if amount <= 50]
        assert not small or not large or max(small) < min(large)


def test_users_keep_their_habits(events: Events) -> None:
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events("tfd", 30_000, fraud_rate=0.0):
        by_user[event["user_id"]].append(event)
    assert all(re.fullmatch(r"user_\d{6}", user) for user in by_user)
    regulars = [history for history in by_user.values() if len(history) >= 8]
    assert len(regulars) > 100
    for history in regulars:
        devices = Counter((e["device_info"]["os"], e["device_info"]["browser"]) for e in history)
        currencies = Counter(e["currency"] for e in history)
        assert devices.most_common(1)[0][1] >= len(history) / 2
        assert currencies.most_common(1)[0][1] >= len(history) / 2
        ages = [e["account_age_days"] for e in history]
        assert ages == sorted(ages)


def test_account_age_grows_with_simulated_time(start: datetime) -> None:
    early = TfdGenerator(seed=3, start=start, users=1, fraud_rate=0.0)
    late = TfdGenerator(seed=3, start=start + timedelta(days=100), users=1, fraud_rate=0.0)
    # Same seed: the single holder is identical, only opened relative to a later start.
    assert next(late)["account_age_days"] == next(early)["account_age_days"]
    generator = TfdGenerator(seed=3, start=start, users=1, fraud_rate=0.0, rate=1 / 86_400)
    ages = [next(generator)["account_age_days"] for _ in range(30)]
    assert ages[-1] - ages[0] >= 15


def test_merchants_sell_mostly_in_one_category(events: Events) -> None:
    by_merchant: dict[str, Counter[str]] = defaultdict(Counter)
    for event in events("tfd", 20_000, fraud_rate=0.0):
        by_merchant[event["merchant_id"]][event["product_category"]] += 1
    assert all(re.fullmatch(r"merchant_\d+", m) and 1 <= int(m[9:]) <= 200 for m in by_merchant)
    busy = [c for c in by_merchant.values() if c.total() >= 50]
    assert all(c.most_common(1)[0][1] / c.total() > 0.8 for c in busy)


def test_invalid_options_are_refused(start: datetime) -> None:
    with pytest.raises(ValueError, match="fraud_rate"):
        TfdGenerator(seed=1, start=start, fraud_rate=1.5)
    with pytest.raises(ValueError, match="rate"):
        TfdGenerator(seed=1, start=start, rate=0.0)
