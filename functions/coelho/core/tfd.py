"""Transaction Fraud Detection (TFD): binary classification of card transactions.

The event keeps the original system's field names. Features use what carries signal (amount,
account age, CVV, billing match, categoricals, local time) and never ids, IPs or user agents.

Examples
--------
>>> from coelho.core import tfd
>>> x = tfd.features(tfd.EXAMPLE)
>>> x["log_amount"], x["cvv_missing"], x["payment_method"], x["local_hour"]
(4.61..., 0.0, 'credit_card', 8)
>>> tfd.USE_CASE.schema.validate(tfd.EXAMPLE)
[]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from river import forest, imblearn, linear_model, optim, preprocessing
from river.drift import ADWIN

from coelho.core.drift import DriftRule
from coelho.core.formulas import SCALAR, Ops
from coelho.core.metrics import ClassificationSuite
from coelho.core.schema import Field, Schema
from coelho.core.select import Select
from coelho.core.usecase import ChampionRule, UseCase

__all__ = ["EXAMPLE", "USE_CASE", "features", "formulas"]

CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL")
PRODUCT_CATEGORIES = (
    "electronics", "clothing", "groceries", "travel", "services",
    "digital_goods", "luxury_items", "gambling", "other",
)
TRANSACTION_TYPES = ("purchase", "withdrawal", "transfer", "payment", "deposit")
PAYMENT_METHODS = ("credit_card", "debit_card", "paypal", "bank_transfer", "crypto")
OPERATING_SYSTEMS = ("iOS", "Android", "Windows", "macOS", "Linux", "Other")
BROWSERS = ("Chrome", "Safari", "Firefox", "Edge", "Opera", "Other")

SCHEMA = Schema("tfd.transaction.v1", (
    Field("transaction_id", "str", max_length=64),
    Field("user_id", "str", max_length=64),
    Field("timestamp", "timestamp"),
    Field("amount", "float", minimum=0.0, maximum=1_000_000.0),
    Field("currency", "str", choices=CURRENCIES),
    Field("merchant_id", "str", max_length=64),
    Field("product_category", "str", choices=PRODUCT_CATEGORIES),
    Field("transaction_type", "str", choices=TRANSACTION_TYPES),
    Field("payment_method", "str", choices=PAYMENT_METHODS),
    Field("location", "object", fields=(
        Field("lat", "float", minimum=-90.0, maximum=90.0),
        Field("lon", "float", minimum=-180.0, maximum=180.0),
    )),
    Field("ip_address", "str", max_length=64),
    Field("device_info", "object", fields=(
        Field("os", "str", choices=OPERATING_SYSTEMS),
        Field("browser", "str", choices=BROWSERS),
    )),
    Field("user_agent", "str", max_length=512),
    Field("account_age_days", "int", minimum=0, maximum=36_500),
    Field("cvv_provided", "bool"),
    Field("billing_address_match", "bool"),
    Field("is_fraud", "int", choices=(0, 1)),
))

CATEGORICAL = ("currency", "product_category", "transaction_type", "payment_method", "os", "browser")
NUMERIC = (
    "log_amount", "account_age_days", "new_account", "cvv_missing", "billing_mismatch",
    "local_hour", "night", "weekend",
)

EXAMPLE: dict[str, Any] = {
    "transaction_id": "5f0c6c3e-0d51-4c1e-9a55-0c1a4a1d7b01",
    "user_id": "user_000042",
    "timestamp": "2026-03-02T14:30:00.123456+00:00",
    "amount": 99.9,
    "currency": "USD",
    "merchant_id": "merchant_17",
    "product_category": "electronics",
    "transaction_type": "purchase",
    "payment_method": "credit_card",
    "location": {"lat": 29.76, "lon": -95.37},
    "ip_address": "203.0.113.7",
    "device_info": {"os": "iOS", "browser": "Safari"},
    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
    "account_age_days": 400,
    "cvv_provided": True,
    "billing_address_match": True,
    "is_fraud": 0,
}


def formulas(event: Mapping[str, Any], ops: Ops) -> dict[str, Any]:
    """Model inputs of one transaction, or of columns of them (never the label, ids, IP or user agent)."""
    hour, weekday = ops.local_time(event["timestamp"], event["location"]["lon"])
    age = event["account_age_days"]
    device = event["device_info"]
    return {
        "log_amount": ops.log1p(event["amount"]),
        "account_age_days": ops.num(age),
        "new_account": ops.num(age < 30),
        "cvv_missing": 1.0 - ops.num(event["cvv_provided"]),
        "billing_mismatch": 1.0 - ops.num(event["billing_address_match"]),
        "local_hour": hour,
        "night": ops.num(hour < 6),
        "weekend": ops.num(weekday >= 5),
        "currency": event["currency"],
        "product_category": event["product_category"],
        "transaction_type": event["transaction_type"],
        "payment_method": event["payment_method"],
        "os": device["os"],
        "browser": device["browser"],
    }


def features(event: Mapping[str, Any]) -> dict[str, Any]:
    """Model inputs of one transaction: `formulas` on plain Python values."""
    return formulas(event, SCALAR)


def default_model() -> Any:
    """Scaled numerics + one-hot categoricals into a class-weighted logistic regression.

    Fraud here is a few strong, mostly additive signals, which a weighted linear model learns
    quickly and stores in kilobytes; the weight tilts it towards recall, as FBeta(2) wants.
    """
    numeric = Select(*NUMERIC) | preprocessing.StandardScaler()
    categorical = Select(*CATEGORICAL) | preprocessing.OneHotEncoder()
    return (numeric + categorical) | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.02),
        loss=optim.losses.Log(weight_pos=8.0, weight_neg=1.0),
        l2=1e-4,
    )


def original_model() -> Any:
    """The original system's RandomUnderSampler(ARFClassifier) configuration."""
    return imblearn.RandomUnderSampler(
        classifier=forest.ARFClassifier(
            n_models=10, max_features="sqrt", lambda_value=6, disable_weighted_vote=False,
            drift_detector=ADWIN(delta=0.002), warning_detector=ADWIN(delta=0.01),
            grace_period=50, max_depth=None, split_criterion="info_gain", delta=0.01, tau=0.05,
            leaf_prediction="nba", nb_threshold=0, nominal_attributes=None, binary_split=False,
            min_branch_fraction=0.01, max_share_to_split=0.99, max_size=100.0,
            memory_estimate_period=2_000_000, stop_mem_management=False,
            remove_poor_attrs=False, merit_preprune=True, seed=42,
        ),
        desired_dist={0: 0.5, 1: 0.5},
        seed=42,
    )


USE_CASE = UseCase(
    key="tfd",
    title="Transaction Fraud Detection",
    task="classification",
    event_type="io.coelho.tfd.transaction.v1",
    schema=SCHEMA,
    id_field="transaction_id",
    partition_field="user_id",
    label_field="is_fraud",
    features=features,
    formulas=formulas,
    presets={"default": default_model, "original": original_model},
    make_metrics=ClassificationSuite,
    champion=ChampionRule("FBeta", "max", rolling="RollingFBeta"),
    # The decision's 0/1 error: at ~1 % fraud the per-event log loss is too heavy-tailed (false detections).
    drift=DriftRule("0/1 error of the fraud decision", lambda outcome: float(outcome["y_pred"] != outcome["y"])),
)
