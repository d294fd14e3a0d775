"""ECCI: a consistent catalogue, persistent customers, sessions that end and expire."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from coelho.producers.ecci import MAX_SESSION_EVENTS, SESSION_TIMEOUT_SECONDS, EcciGenerator
from coelho.producers.ecci_catalogue import slug

PRODUCT_FIELDS = ("product_id", "product_category", "price")


@pytest.fixture(scope="module")
def generator() -> EcciGenerator:
    return EcciGenerator(seed=5, start=datetime(2026, 3, 2, tzinfo=UTC), rate=2.0)


@pytest.fixture(scope="module")
def stream(generator: EcciGenerator) -> list[dict[str, Any]]:
    """About four simulated hours of events."""
    return [next(generator) for _ in range(30_000)]


@pytest.fixture(scope="module")
def sessions(stream: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in stream:
        by_session[event["session_id"]].append(event)
    return by_session


def _stamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def test_each_product_has_one_category_and_one_price(stream: list[dict[str, Any]]) -> None:
    seen: dict[str, tuple[str, float]] = {}
    for event in stream:
        if event["product_id"] is None:
            continue
        product = (event["product_category"], event["price"])
        assert seen.setdefault(event["product_id"], product) == product
        assert event["page_url"] == (
            f"https://example.com/{slug(event['product_category'])}/{event['product_id']}")
    assert len(seen) > 90
    assert all(1000 <= int(p[5:]) <= 1100 for p in seen)


def test_fields_are_null_exactly_where_the_original_left_them_null(
    stream: list[dict[str, Any]],
) -> None:
    for event in stream:
        kind = event["event_type"]
        searching = kind == "search"
        assert all((event[f] is None) == searching for f in PRODUCT_FIELDS)
        assert (event["search_query"] is None) == (not searching)
        assert (event["quantity"] is None) == (kind not in ("add_to_cart", "purchase"))
        if searching:
            assert event["page_url"] == (
                "https://example.com/search?q=" + event["search_query"].replace(" ", "+"))
            assert 5 <= event["time_on_page_seconds"] <= 60
        if kind == "purchase":
            assert 30 <= event["time_on_page_seconds"] <= 180


def test_sessions_follow_the_state_machine(sessions: dict[str, list[dict[str, Any]]]) -> None:
    for events in sessions.values():
        assert [e["session_event_sequence"] for e in events] == list(range(1, len(events) + 1))
        assert events[0]["event_type"] in ("page_view", "search")
        assert events[0]["referrer_url"] is not None
        assert all(e["referrer_url"] is None for e in events[1:])
        cart: tuple[str, int] | None = None
        for event in events:
            if event["event_type"] == "add_to_cart":
                cart = (event["product_id"], event["quantity"])
            elif event["event_type"] == "purchase":
                assert cart == (event["product_id"], event["quantity"])
                cart = None
    kinds = {e["event_type"] for events in sessions.values() for e in events}
    assert kinds == {"page_view", "search", "add_to_cart", "purchase", "leave_review"}


def test_session_event_sequence_stays_bounded(sessions: dict[str, list[dict[str, Any]]]) -> None:
    lengths = [len(events) for events in sessions.values()]
    assert max(lengths) <= MAX_SESSION_EVENTS
    assert sum(lengths) / len(lengths) < 12


def test_sessions_expire_after_fifteen_idle_minutes(
    generator: EcciGenerator,
    stream: list[dict[str, Any]],
    sessions: dict[str, list[dict[str, Any]]],
) -> None:
    for events in sessions.values():
        gaps = [_stamp(b) - _stamp(a) for a, b in zip(events, events[1:], strict=False)]
        assert all(gap <= SESSION_TIMEOUT_SECONDS for gap in gaps)
    assert generator.expired_sessions > 50
    # A customer who went idle comes back in a new session, with the same device and home.
    last_seen: dict[str, dict[str, Any]] = {}
    comebacks = 0
    for event in stream:
        previous = last_seen.get(event["customer_id"])
        if previous and previous["session_id"] != event["session_id"]:
            comebacks += _stamp(event) - _stamp(previous) > SESSION_TIMEOUT_SECONDS
            assert (previous["device_info"], previous["location"]) == (
                event["device_info"], event["location"])
        last_seen[event["customer_id"]] = event
    assert comebacks > 50


def test_customers_keep_device_and_home(stream: list[dict[str, Any]]) -> None:
    profiles: dict[str, set[str]] = defaultdict(set)
    for event in stream:
        profiles[event["customer_id"]].add(repr((event["device_info"], event["location"])))
        assert round(event["location"]["lat"], 3) == event["location"]["lat"]
    assert max(len(p) for p in profiles.values()) == 1


def test_the_session_cap_never_drops_an_iteration() -> None:
    generator = EcciGenerator(
        seed=2, start=datetime(2026, 3, 2, 18, tzinfo=UTC), rate=50.0, max_open_sessions=5,
    )
    events = [next(generator) for _ in range(2000)]
    assert generator.open_sessions <= 5
    assert len(events) == 2000
    assert len({e["session_id"] for e in events}) > 100
