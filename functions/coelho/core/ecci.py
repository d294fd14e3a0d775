"""E-Commerce Customer Interactions (ECCI): DBSTREAM clustering of visit events.

As in the original system: numerics are standardised online, categoricals are hashed, and
DBSTREAM(1.5, 0.05, 4, 0.5, 1.0) clusters the result. There is no label.

Examples
--------
>>> from coelho.core import ecci
>>> x = ecci.features(ecci.EXAMPLE)
>>> x["price"], x["event_type"], x["referrer_url"]
(59.99, 'add_to_cart', 'none')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from river import cluster, preprocessing

from coelho.core.drift import DriftRule
from coelho.core.formulas import SCALAR, Ops
from coelho.core.metrics import ClusteringSuite, distance
from coelho.core.schema import Field, Schema
from coelho.core.select import Select
from coelho.core.usecase import ChampionRule, UseCase

__all__ = ["EXAMPLE", "USE_CASE", "features", "formulas"]

EVENT_TYPES = ("page_view", "add_to_cart", "purchase", "search", "leave_review")
PRODUCT_CATEGORIES = (
    "Electronics", "Fashion & Apparel", "Home & Garden", "Beauty & Personal Care",
    "Sports & Outdoors", "Books", "Grocery & Gourmet Food", "Automotive", "Toys & Games",
    "Computers", "Pet Supplies", "Health & Household",
)
REFERRERS = (
    "direct", "google.com", "facebook.com", "amazon.com", "instagram.com", "twitter.com",
    "youtube.com", "tiktok.com", "pinterest.com", "reddit.com", "linkedin.com", "bing.com",
    "yahoo.com", "email_campaign", "affiliate_link",
)
DEVICE_TYPES = ("Mobile", "Desktop", "Tablet")
BROWSERS = ("Chrome", "Safari", "Firefox", "Edge", "Opera", "Other")
OPERATING_SYSTEMS = ("iOS", "Android", "Windows", "macOS", "Linux", "Other")

SCHEMA = Schema("ecci.interaction.v1", (
    Field("event_id", "str", max_length=64),
    Field("customer_id", "str", max_length=64),
    Field("session_id", "str", max_length=64),
    Field("timestamp", "timestamp"),
    Field("event_type", "str", choices=EVENT_TYPES),
    Field("product_id", "str", nullable=True, max_length=64),
    Field("product_category", "str", nullable=True, choices=PRODUCT_CATEGORIES),
    Field("price", "float", nullable=True, minimum=0.0, maximum=1_000_000.0),
    Field("page_url", "str", max_length=2048),
    Field("time_on_page_seconds", "int", minimum=0, maximum=86_400),
    Field("quantity", "int", nullable=True, minimum=1, maximum=1_000),
    Field("search_query", "str", nullable=True, max_length=256),
    Field("referrer_url", "str", nullable=True, choices=REFERRERS),
    Field("device_info", "object", fields=(
        Field("device_type", "str", choices=DEVICE_TYPES),
        Field("browser", "str", choices=BROWSERS),
        Field("os", "str", choices=OPERATING_SYSTEMS),
    )),
    Field("location", "object", fields=(
        Field("lat", "float", minimum=-90.0, maximum=90.0),
        Field("lon", "float", minimum=-180.0, maximum=180.0),
    )),
    Field("session_event_sequence", "int", minimum=1, maximum=1_000_000),
))

NUMERIC = ("price", "quantity", "session_event_sequence", "time_on_page_seconds")
HASHED = (
    "event_type", "product_category", "product_id", "referrer_url", "device_type", "os",
    "browser", "local_hour",
)

EXAMPLE: dict[str, Any] = {
    "event_id": "9a0f2d7e-1c3b-4e5f-8a9b-0c1d2e3f4a5b",
    "customer_id": "customer_000077",
    "session_id": "4c3b2a19-8d7e-4f6a-9b0c-1d2e3f4a5b6c",
    "timestamp": "2026-03-02T19:05:00+00:00",
    "event_type": "add_to_cart",
    "product_id": "prod_1042",
    "product_category": "Electronics",
    "price": 59.99,
    "page_url": "https://example.com/electronics/prod_1042",
    "time_on_page_seconds": 75,
    "quantity": 2,
    "search_query": None,
    "referrer_url": None,
    "device_info": {"device_type": "Mobile", "browser": "Chrome", "os": "Android"},
    "location": {"lat": 29.76, "lon": -95.37},
    "session_event_sequence": 3,
}


def formulas(event: Mapping[str, Any], ops: Ops) -> dict[str, Any]:
    """Numerics (nulls as 0) and categoricals (nulls as 'none') of one interaction, or of columns of them."""
    hour, _ = ops.local_time(event["timestamp"], event["location"]["lon"])
    device = event["device_info"]
    return {
        "price": ops.num(ops.fill(event["price"], 0.0)),
        "quantity": ops.num(ops.fill(event["quantity"], 0)),
        "session_event_sequence": ops.num(event["session_event_sequence"]),
        "time_on_page_seconds": ops.num(event["time_on_page_seconds"]),
        "event_type": event["event_type"],
        "product_category": ops.fill(event["product_category"], "none"),
        "product_id": ops.fill(event["product_id"], "none"),
        "referrer_url": ops.fill(event["referrer_url"], "none"),
        "device_type": device["device_type"],
        "os": device["os"],
        "browser": device["browser"],
        "local_hour": ops.text(hour),
    }


def features(event: Mapping[str, Any]) -> dict[str, Any]:
    """Model inputs of one interaction: `formulas` on plain Python values."""
    return formulas(event, SCALAR)


def centre_distance(outcome: Mapping[str, Any]) -> float | None:
    """Distance of the (scaled, hashed) event to its assigned cluster's centre; None before that centre exists.

    >>> centre_distance({"cluster": 0, "x_transformed": {"a": 1.0}, "centers": {0: {"a": 4.0}}})
    3.0
    """
    centre = outcome["centers"].get(outcome["cluster"])
    return None if centre is None else distance(outcome["x_transformed"], centre)


def _model(clustering_threshold: float) -> Any:
    numeric = Select(*NUMERIC) | preprocessing.StandardScaler()
    hashed = Select(*HASHED) | preprocessing.FeatureHasher(n_features=64, seed=42)
    return (numeric + hashed) | cluster.DBSTREAM(
        clustering_threshold=clustering_threshold, fading_factor=0.05, cleanup_interval=4,
        intersection_factor=0.5, minimum_weight=1.0,
    )


def default_model() -> Any:
    """The original configuration: scaled numerics + hashed categoricals into DBSTREAM."""
    return _model(1.5)


def original_model() -> Any:
    """Same as the default: the original DBSTREAM is already small and fast."""
    return _model(1.5)


USE_CASE = UseCase(
    key="ecci",
    title="E-Commerce Customer Interactions",
    task="clustering",
    event_type="io.coelho.ecci.interaction.v1",
    schema=SCHEMA,
    id_field="event_id",
    partition_field="session_id",
    label_field=None,
    features=features,
    formulas=formulas,
    presets={"default": default_model, "original": original_model},
    make_metrics=ClusteringSuite,
    champion=ChampionRule("Silhouette", "max", rolling="RollingSilhouette"),
    drift=DriftRule("distance to the assigned cluster centre", centre_distance, delta=1e-4),
)
