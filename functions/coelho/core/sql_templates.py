"""Ready-made queries per use case, as the original UI offered them; each reads the table `data`.

Orderings carry a tie-breaker, so that a template's rows are fully determined by the table.

>>> [t.name for t in TEMPLATES["tfd"]]
['Sample Data', 'Fraud Cases', 'High Value', 'Fraud by Merchant', 'Transaction Types', 'Row Count']
>>> template("eta", "Long Trips").query
'SELECT * FROM data WHERE estimated_distance_km > 50 ORDER BY estimated_distance_km DESC, trip_id LIMIT 100'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_QUERY", "TEMPLATES", "Template", "template"]

#: What the SQL editor starts with.
DEFAULT_QUERY = "SELECT * FROM data LIMIT 100"


@dataclass(frozen=True)
class Template:
    """One named query with a one-line description."""

    name: str
    description: str
    query: str


_ROW_COUNT = Template("Row Count", "Number of rows in the table", "SELECT count(*) AS row_count FROM data")

TEMPLATES: dict[str, tuple[Template, ...]] = {
    "tfd": (
        Template("Sample Data", "The first 100 rows", DEFAULT_QUERY),
        Template("Fraud Cases", "Latest fraudulent transactions",
                 "SELECT * FROM data WHERE is_fraud = 1 ORDER BY event_time DESC, transaction_id LIMIT 100"),
        Template("High Value", "Transactions above 1000",
                 "SELECT * FROM data WHERE amount > 1000 ORDER BY amount DESC, transaction_id LIMIT 100"),
        Template("Fraud by Merchant", "The 20 merchants with the most fraud cases",
                 "SELECT merchant_id, count(*) AS fraud_count FROM data WHERE is_fraud = 1 "
                 "GROUP BY merchant_id ORDER BY fraud_count DESC, merchant_id LIMIT 20"),
        Template("Transaction Types", "Count and average amount per transaction type",
                 "SELECT transaction_type, count(*) AS count, avg(amount) AS avg_amount FROM data "
                 "GROUP BY transaction_type ORDER BY count DESC, transaction_type"),
        _ROW_COUNT,
    ),
    "eta": (
        Template("Sample Data", "The first 100 rows", DEFAULT_QUERY),
        Template("Long Trips", "Trips longer than 50 km",
                 "SELECT * FROM data WHERE estimated_distance_km > 50 "
                 "ORDER BY estimated_distance_km DESC, trip_id LIMIT 100"),
        Template("Weather Impact", "Trips and average actual travel time per weather",
                 "SELECT weather, count(*) AS trips, avg(simulated_actual_travel_time_seconds) AS avg_actual_seconds "
                 "FROM data GROUP BY weather ORDER BY trips DESC, weather"),
        Template("Driver Performance", "The 20 drivers with the most trips, with their average rating",
                 "SELECT driver_id, count(*) AS trips, avg(driver_rating) AS avg_rating FROM data "
                 "GROUP BY driver_id ORDER BY trips DESC, driver_id LIMIT 20"),
        Template("Vehicle Types", "Trips and average distance per vehicle type",
                 "SELECT vehicle_type, count(*) AS trips, avg(estimated_distance_km) AS avg_distance_km FROM data "
                 "GROUP BY vehicle_type ORDER BY trips DESC, vehicle_type"),
        _ROW_COUNT,
    ),
    "ecci": (
        Template("Sample Data", "The first 100 rows", DEFAULT_QUERY),
        Template("Purchases", "Latest purchases",
                 "SELECT * FROM data WHERE event_type = 'purchase' ORDER BY event_time DESC, event_id LIMIT 100"),
        Template("By Category", "Events and average price per product category",
                 "SELECT product_category, count(*) AS events, avg(price) AS avg_price FROM data "
                 "GROUP BY product_category ORDER BY events DESC, product_category NULLS LAST"),
        Template("Event Types", "Events per event type",
                 "SELECT event_type, count(*) AS events FROM data "
                 "GROUP BY event_type ORDER BY events DESC, event_type"),
        Template("Top Products", "The 20 most viewed products, with their purchases",
                 "SELECT product_id, count(*) FILTER (WHERE event_type = 'page_view') AS views, "
                 "count(*) FILTER (WHERE event_type = 'purchase') AS purchases FROM data "
                 "WHERE product_id IS NOT NULL GROUP BY product_id ORDER BY views DESC, product_id LIMIT 20"),
        _ROW_COUNT,
    ),
}


def template(use_case: str, name: str) -> Template:
    """The template of `use_case` called `name` (KeyError if none)."""
    for candidate in TEMPLATES[use_case]:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no template {name!r} for {use_case}")
