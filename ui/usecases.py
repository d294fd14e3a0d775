"""How the UI shows each use case: colours, metrics with units, form groups with units. Presentation only.

The event contracts themselves (field kinds, valid ranges, choices) come from `coelho.core`'s schemas, so the
forms can never drift from what the functions accept.

Examples
--------
>>> VIEWS["eta"].metric("MAE").unit, VIEWS["tfd"].champion_metric
('s', 'FBeta')
>>> [f.path for f in VIEWS["eta"].groups[0].fields][:2]
['origin.lat', 'origin.lon']
"""

from __future__ import annotations

from dataclasses import dataclass

from coelho.core import USE_CASES
from coelho.core.schema import Field
from coelho.core.usecase import UseCase

__all__ = ["FieldView", "Group", "MetricView", "UseCaseView", "VIEWS", "schema_field"]


@dataclass(frozen=True)
class MetricView:
    """One metric: its name in /status, a label, its unit (`s`, `%` or text) and what it says."""

    name: str
    label: str
    unit: str = ""
    help: str = ""


@dataclass(frozen=True)
class FieldView:
    """One form field: dotted path in the event, label, unit."""

    path: str
    label: str
    unit: str = ""


@dataclass(frozen=True)
class Group:
    """A titled group of form fields."""

    title: str
    fields: tuple[FieldView, ...]


@dataclass(frozen=True)
class UseCaseView:
    """Everything the pages need to show one use case."""

    key: str
    icon: str
    colour: str
    summary: str
    metrics: tuple[MetricView, ...]
    charted: tuple[str, ...]
    groups: tuple[Group, ...]
    counted: tuple[str, ...] = ()  # ECCI: features whose per-cluster distributions the status carries

    @property
    def use_case(self) -> UseCase:
        return USE_CASES[self.key]

    @property
    def title(self) -> str:
        return self.use_case.title

    @property
    def champion_metric(self) -> str:
        return self.use_case.champion.metric

    def metric(self, name: str) -> MetricView:
        return next(m for m in self.metrics if m.name == name)


def schema_field(use_case: UseCase, path: str) -> Field:
    """The schema's field at dotted `path` (e.g. `location.lat`)."""
    fields = use_case.schema.fields
    spec: Field | None = None
    for part in path.split("."):
        spec = next(f for f in fields if f.name == part)
        fields = spec.fields
    assert spec is not None
    return spec


def _fields(*specs: tuple[str, str] | tuple[str, str, str]) -> tuple[FieldView, ...]:
    return tuple(FieldView(*spec) for spec in specs)


TFD = UseCaseView(
    key="tfd", icon="credit_card", colour="#b91c1c",
    summary="Binary classification of card transactions: the probability that a transaction is fraud, learned "
    "online by a class-weighted logistic regression.",
    metrics=(
        MetricView("FBeta", "F2", help="F-beta with beta = 2: recall weighs four times precision"),
        MetricView("RollingFBeta", "F2, last 1000", help="the champion rule's score"),
        MetricView("ROCAUC", "ROC AUC", help="ranking quality of the fraud probability"),
        MetricView("RollingROCAUC", "ROC AUC, last 5000"),
        MetricView("Precision", "Precision", help="share of flagged transactions that were fraud"),
        MetricView("Recall", "Recall", help="share of fraud that was flagged"),
        MetricView("F1", "F1"),
        MetricView("Accuracy", "Accuracy"),
        MetricView("BalancedAccuracy", "Balanced accuracy"),
        MetricView("MCC", "MCC", help="Matthews correlation, -1..1"),
        MetricView("CohenKappa", "Cohen's kappa"),
        MetricView("LogLoss", "Log loss", help="lower is better"),
    ),
    charted=("FBeta", "RollingFBeta", "ROCAUC", "Precision", "Recall"),
    groups=(
        Group("Transaction", _fields(
            ("amount", "Amount", "in its currency"), ("currency", "Currency"),
            ("transaction_type", "Type"), ("payment_method", "Payment method"),
            ("product_category", "Category"), ("merchant_id", "Merchant"))),
        Group("Account and checks", _fields(
            ("account_age_days", "Account age", "days"), ("cvv_provided", "CVV provided"),
            ("billing_address_match", "Billing address matches"))),
        Group("Device and location", _fields(
            ("device_info.os", "OS"), ("device_info.browser", "Browser"),
            ("location.lat", "Latitude", "°"), ("location.lon", "Longitude", "°"),
            ("ip_address", "IP address"), ("user_agent", "User agent"))),
        Group("Identity and time", _fields(
            ("timestamp", "Time", "ISO 8601 with offset"), ("user_id", "User"),
            ("transaction_id", "Transaction id"))),
    ),
)

ETA = UseCaseView(
    key="eta", icon="local_taxi", colour="#1d4ed8",
    summary="Regression of a ride's travel time in seconds, learned online in log space from distance, the hour of "
    "the week, weather and the driver.",
    metrics=(
        MetricView("MAE", "MAE", "s", "mean absolute error"),
        MetricView("RollingMAE", "MAE, last 1000", "s", "the champion rule's score"),
        MetricView("TimeRollingMAE", "MAE, last 5 min", "s"),
        MetricView("RMSE", "RMSE", "s"),
        MetricView("RollingRMSE", "RMSE, last 1000", "s"),
        MetricView("R2", "R²", help="share of variance explained, up to 1"),
        MetricView("MAPE", "MAPE", "%", "mean absolute percentage error"),
        MetricView("SMAPE", "SMAPE", "%", "symmetric MAPE"),
        MetricView("RMSLE", "RMSLE"),
    ),
    charted=("MAE", "RollingMAE", "RMSE"),
    groups=(
        Group("Route", _fields(
            ("origin.lat", "Origin latitude", "°"), ("origin.lon", "Origin longitude", "°"),
            ("destination.lat", "Destination latitude", "°"), ("destination.lon", "Destination longitude", "°"),
            ("estimated_distance_km", "Distance", "km, straight line"),
            ("initial_estimated_travel_time_seconds", "Initial estimate", "s, at 40 km/h"))),
        Group("Conditions", _fields(
            ("timestamp", "Time", "ISO 8601 with offset"), ("hour_of_day", "Hour", "local, 0–23"),
            ("day_of_week", "Day of week", "0 = Monday"), ("weather", "Weather"),
            ("temperature_celsius", "Temperature", "°C"))),
        Group("Driver and vehicle", _fields(
            ("driver_id", "Driver"), ("driver_rating", "Rating", "1–5"), ("vehicle_id", "Vehicle"),
            ("vehicle_type", "Vehicle type"), ("trip_id", "Trip id"))),
    ),
)

ECCI = UseCaseView(
    key="ecci", icon="shopping_cart", colour="#047857",
    summary="Clustering of shop interactions with DBSTREAM: which kind of visit an interaction belongs to, "
    "learned online without labels.",
    metrics=(
        MetricView("Silhouette", "Silhouette", help="simplified silhouette, -1..1, bigger is better"),
        MetricView("RollingSilhouette", "Silhouette, last 1000", help="the champion rule's score"),
        MetricView("n_clusters", "Clusters"),
        MetricView("n_micro_clusters", "Micro-clusters"),
    ),
    charted=("Silhouette", "RollingSilhouette"),
    groups=(
        Group("Interaction", _fields(
            ("event_type", "Event"), ("product_category", "Category"), ("product_id", "Product"),
            ("price", "Price", "$"), ("quantity", "Quantity"), ("referrer_url", "Referrer"),
            ("search_query", "Search query"), ("page_url", "Page URL"))),
        Group("Session", _fields(
            ("time_on_page_seconds", "Time on page", "s"), ("session_event_sequence", "Event # in session"),
            ("timestamp", "Time", "ISO 8601 with offset"), ("session_id", "Session"),
            ("customer_id", "Customer"), ("event_id", "Event id"))),
        Group("Device and location", _fields(
            ("device_info.device_type", "Device"), ("device_info.browser", "Browser"), ("device_info.os", "OS"),
            ("location.lat", "Latitude", "°"), ("location.lon", "Longitude", "°"))),
    ),
    counted=("event_type", "product_category", "referrer_url", "device_type", "os", "browser"),
)

VIEWS: dict[str, UseCaseView] = {view.key: view for view in (TFD, ETA, ECCI)}
