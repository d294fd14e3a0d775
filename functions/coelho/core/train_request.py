"""A request to train a batch model: what the CLI, the `train` function and the JobSink event all carry.

`parse_train_request` checks a JSON object and names every bad field at once:

>>> parse_train_request({"use_case": "ecci", "sample_frac": 0.5, "k": 4})
TrainRequest(use_case='ecci', sample_frac=0.5, max_rows=None, since=None, until=None, k=4)
>>> try:
...     parse_train_request({"use_case": "nope", "sample_frac": 0, "max_rows": 0, "k": 1, "colour": "red"})
... except InvalidTrainRequest as exc:
...     [p.field for p in exc.problems]
['colour', 'use_case', 'sample_frac', 'max_rows', 'k']
>>> try:
...     parse_train_request({"use_case": "tfd", "since": "2026-03-02T10:00:00Z", "until": "2026-03-01", "k": 3})
... except InvalidTrainRequest as exc:
...     [(p.field, p.message) for p in exc.problems]
[('until', 'must be later than since'), ('k', 'applies to ecci only (the K of KMeans)')]
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from coelho.core.schema import Problem

__all__ = ["EVENT_TYPE", "EVENT_TYPES", "K_MAX", "K_MIN", "USE_CASE_KEYS", "InvalidTrainRequest", "TrainRequest",
           "parse_time", "parse_train_request", "request_from_event"]

USE_CASE_KEYS = ("tfd", "eta", "ecci")
K_MIN, K_MAX = 2, 50
FIELDS = ("use_case", "sample_frac", "max_rows", "since", "until", "k")

#: The CloudEvent type that asks for a training (data: the request's JSON object).
EVENT_TYPE = "io.coelho.train.requested.v1"
#: The CloudEvents that start a training: a request; a PingSource's tick (data: the request, as for a request);
#: a learner's drift detection (`coelho.runtime.drift_events`: its use case is retrained with the defaults).
EVENT_TYPES = (EVENT_TYPE, "dev.knative.sources.ping", "io.coelho.drift.detected.v1")


class InvalidTrainRequest(ValueError):
    """The request has bad fields; `problems` names each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class TrainRequest:
    """One training: the use case and which rows of its Delta table to use."""

    use_case: str
    sample_frac: float | None = None
    max_rows: int | None = None
    since: str | None = None
    until: str | None = None
    k: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The request as the JSON object it came from (unset fields left out)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def since_utc(self) -> datetime | None:
        return parse_time(self.since) if self.since else None

    def until_utc(self) -> datetime | None:
        return parse_time(self.until) if self.until else None


def parse_time(text: str) -> datetime:
    """An ISO-8601 time; without an offset it is UTC.

    >>> parse_time("2026-03-02T10:00:00Z").isoformat(), parse_time("2026-03-02").isoformat()
    ('2026-03-02T10:00:00+00:00', '2026-03-02T00:00:00+00:00')
    """
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def request_from_event(event_type: str, data: Any) -> TrainRequest:
    """The training a CloudEvent of one of `EVENT_TYPES` asks for (`data`: its data, JSON text or decoded).

    >>> request_from_event("io.coelho.drift.detected.v1", {"use_case": "eta", "detection": 3, "at": "…"}).use_case
    'eta'
    >>> request_from_event("dev.knative.sources.ping", '{"use_case": "tfd", "max_rows": 5000}').max_rows
    5000
    >>> try:
    ...     request_from_event("com.example.other", {"use_case": "tfd"})
    ... except InvalidTrainRequest as exc:
    ...     exc.problems[0].field
    'type'
    """
    if event_type not in EVENT_TYPES:
        raise InvalidTrainRequest([Problem("type", f"must be one of {', '.join(EVENT_TYPES)}")])
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            raise InvalidTrainRequest([Problem("data", "must be a JSON object")]) from None
    if event_type == EVENT_TYPES[2] and isinstance(data, Mapping):
        data = {"use_case": data.get("use_case")}
    return parse_train_request(data)


def parse_train_request(data: Any) -> TrainRequest:
    """Check a request object; raise InvalidTrainRequest naming every bad field."""
    if not isinstance(data, Mapping):
        raise InvalidTrainRequest([Problem("body", "must be a JSON object")])
    problems = [Problem(str(name), f"is not a known field; known: {', '.join(FIELDS)}")
                for name in data if name not in FIELDS]
    use_case = data.get("use_case")
    if use_case not in USE_CASE_KEYS:
        problems.append(Problem("use_case", f"must be one of {list(USE_CASE_KEYS)}"))
    sample_frac = data.get("sample_frac")
    if sample_frac is not None and not (_number(sample_frac) and 0 < sample_frac <= 1):
        problems.append(Problem("sample_frac", "must be a number in (0, 1]"))
    max_rows = data.get("max_rows")
    if max_rows is not None and not (_integer(max_rows) and max_rows >= 1):
        problems.append(Problem("max_rows", "must be an integer >= 1"))
    times: dict[str, datetime] = {}
    for name in ("since", "until"):
        value = data.get(name)
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            times[name] = parse_time(value)
        except ValueError:
            problems.append(Problem(name, "must be an ISO-8601 time, e.g. 2026-03-02T00:00:00Z"))
    if len(times) == 2 and times["since"] >= times["until"]:
        problems.append(Problem("until", "must be later than since"))
    k = data.get("k")
    if k is not None:
        if not (_integer(k) and K_MIN <= k <= K_MAX):
            problems.append(Problem("k", f"must be an integer from {K_MIN} to {K_MAX}"))
        elif use_case in USE_CASE_KEYS and use_case != "ecci":
            problems.append(Problem("k", "applies to ecci only (the K of KMeans)"))
    if problems:
        raise InvalidTrainRequest(problems)
    return TrainRequest(use_case, None if sample_frac is None else float(sample_frac), max_rows,
                        data.get("since"), data.get("until"), k)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
