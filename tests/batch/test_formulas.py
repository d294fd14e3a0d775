"""One feature definition: the formulas over a Delta table's columns equal the per-event features, exactly.

Producer events of every use case, plus edge cases (other UTC offsets, fractional seconds, longitudes on a
half-hour offset, nulls and empty strings, zeros), go through the project's Delta writer; training reads them
back column-wise (`TrainingRows.chunks`) and the feature frame must equal, bit for bit, the one built event by
event with `UseCase.features` — the function the online models and batch prediction call.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from coelho.adapters.training_data import read_rows
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.batch import Encoder, FeatureBuilder, feature_columns
from coelho.core.train_request import TrainRequest
from support.batch import append_events, events

KEYS = ["tfd", "eta", "ecci"]
OFFSETS = ["+00:00", "+05:30", "-03:00", "+14:00"]
LONGITUDES = [7.5, 22.5, -7.5, -22.5, 180.0, -180.0, 0.0, 37.49]


def _edge_cases(key: str, stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the first events with the values where a columnar formula could part from a per-event one."""
    from datetime import datetime, timedelta

    out = []
    for index, event in enumerate(stream[:64]):
        event = {**event, "location": dict(event.get("location") or {}), "origin": dict(event.get("origin") or {}),
                 USE_CASES[key].id_field: f"edge-{index}"}
        moment = datetime.fromisoformat(event["timestamp"]) + timedelta(microseconds=index * 12_345)
        offset = OFFSETS[index % len(OFFSETS)]
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        sign = 1 if offset[0] == "+" else -1
        event["timestamp"] = (moment + sign * timedelta(hours=hours, minutes=minutes)).replace(
            tzinfo=None).isoformat() + offset
        place = "origin" if key == "eta" else "location"
        event[place]["lon"] = LONGITUDES[index % len(LONGITUDES)]
        if key != "eta":
            event.pop("origin")
        if key != "tfd" and key != "ecci":
            event.pop("location")
        if key == "ecci":
            event.update({"price": [None, 0.0, 12.5][index % 3], "quantity": [None, 1][index % 2],
                          "product_category": [None, event["product_category"]][index % 2],
                          "product_id": [None, "", "p1"][index % 3], "referrer_url": None if index % 2 else "bing.com"})
        if key == "tfd":
            event.update({"amount": [0.0, 1e-9, 999_999.99, event["amount"]][index % 4],
                          "cvv_provided": bool(index % 2), "account_age_days": [0, 29, 30, 36_500][index % 4]})
        if key == "eta":
            event["estimated_distance_km"] = [0.0, 0.5, event["estimated_distance_km"]][index % 3]
        out.append(event)
    return out


@pytest.mark.parametrize("key", KEYS)
def test_column_formulas_equal_the_per_event_features_on_delta_rows(tmp_path, key):
    settings = Settings(data_dir=tmp_path)
    use_case = USE_CASES[key]
    stream = events(key, 3_000, seed=77)
    stream += _edge_cases(key, stream)
    assert all(not use_case.schema.validate(event) for event in stream)
    append_events(settings, key, stream)
    rows = read_rows(settings, use_case, TrainRequest(key))
    order = rows.column(use_case.id_field)
    by_id = {str(event[use_case.id_field]): event for event in stream}
    sorted_events = [by_id[str(i)] for i in order]

    columnar, per_event = FeatureBuilder(use_case), FeatureBuilder(use_case)
    for first, chunk in zip(range(0, rows.rows, 1_000), rows.chunks(range(rows.rows), chunk_rows=1_000), strict=True):
        columnar.add(chunk)
        per_event.add(sorted_events[first : first + 1_000])
    pd.testing.assert_frame_equal(columnar.frame(), per_event.frame(), check_exact=True)
    # a chunk iterates as the events it holds (what a consumer of events sees)
    assert list(next(rows.chunks(range(5)))) == sorted_events[:5]


def test_encoder_encodes_a_training_frame_by_its_codes_as_it_encodes_plain_values(tmp_path):
    """The ECCI encoder counts and one-hot encodes a categorical column by its category codes; the levels and
    the matrix equal those of the per-value path (`str()` of each value), which serving takes."""
    settings = Settings(data_dir=tmp_path)
    use_case = USE_CASES["ecci"]
    stream = events("ecci", 3_000, seed=78)
    append_events(settings, "ecci", stream + _edge_cases("ecci", stream))
    rows = read_rows(settings, use_case, TrainRequest("ecci"))
    frame = FeatureBuilder(use_case).add(next(rows.chunks(range(rows.rows), chunk_rows=rows.rows))).frame()
    columns = feature_columns(use_case)
    encoder = Encoder.fit(columns, frame, max_levels=3)  # few levels: many values go to "other"
    for name in columns.categorical:
        ranked = sorted(frame[name].astype(str).value_counts().items(), key=lambda item: (-item[1], item[0]))
        assert encoder.levels[name] == [value for value, _ in ranked[:3]]
    plain = {name: frame[name].tolist() for name in columns.names}
    assert (encoder.transform(frame) == encoder.transform(plain)).all()
