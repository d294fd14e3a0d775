"""E-commerce visit events (ECCI): sessions that start, browse, buy, pause, expire and end.

New sessions arrive as a Poisson process with the local daily rhythm. Inside a session the
next event follows the time spent on the current page, so events of all open sessions merge in
time order (a heap keyed by due time). A customer who pauses longer than 15 minutes comes back
in a new session; every event may also be the last one (more so after a purchase), sessions
are capped at `MAX_SESSION_EVENTS`, and at `max_open_sessions` the session due soonest ends to
make room, so no iteration is ever dropped and memory stays bounded.

Examples
--------
>>> from datetime import UTC, datetime
>>> visits = EcciGenerator(seed=1, start=datetime(2026, 3, 2, 18, tzinfo=UTC), customers=100)
>>> first = next(visits)
>>> first["event_type"] in ("page_view", "search"), first["session_event_sequence"]
(True, 1)
>>> first["referrer_url"] is not None
True
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coelho.core.ecci import PRODUCT_CATEGORIES, USE_CASE
from coelho.core.timeparts import utc_offset_hours
from coelho.producers.base import EventGenerator, Weighted, random_uuid
from coelho.producers.clock import FLAT_PROFILE, ArrivalClock, format_timestamp
from coelho.producers.ecci_catalogue import Catalogue, Customer, Product, search_query
from coelho.producers.geography import HOUSTON
from coelho.producers.seasonality import weekly_profile

__all__ = ["DEFAULT_RATE", "MAX_SESSION_EVENTS", "SESSION_TIMEOUT_SECONDS", "EcciGenerator"]

DEFAULT_RATE = 10.0  # events/s of the original producer
SESSION_TIMEOUT_SECONDS = 15 * 60
MAX_SESSION_EVENTS = 50
#: Mean events caused by one new-session arrival, comebacks included (measured: 7.35 over
#: 200k events); arrivals run at rate / this so that events come at `rate` per second.
EVENTS_PER_ARRIVAL = 7.3
#: After `drift_at` events, prices and the time spent on a page are multiplied by these (a premium relaunch).
DRIFT_PRICE_FACTOR = 3.0
DRIFT_TIME_FACTOR = 2.0

_AWAY_PROBABILITY = 0.03
_LEAVE_PROBABILITY = {
    "page_view": 0.12, "search": 0.10, "add_to_cart": 0.08, "purchase": 0.65,
    "leave_review": 0.30,
}
_FIRST_EVENT = Weighted.of({"page_view": 0.8, "search": 0.2})
_WITH_FOCUS = Weighted.of({"add_to_cart": 0.6, "page_view": 0.35, "leave_review": 0.05})
_BROWSING = Weighted.of({"page_view": 0.6, "search": 0.2, "add_to_cart": 0.2})
_MICROSECONDS = 1_000_000


@dataclass(slots=True)
class _Session:
    """What a visit remembers between its events."""

    session_id: str
    customer: Customer
    sequence: int = 0
    last_us: int = 0
    focus: Product | None = None
    cart: tuple[Product, int] | None = None
    searched_category: str | None = None


class EcciGenerator(EventGenerator):
    """Interaction events of `customers` shoppers (``customer_000000`` ...).

    Parameters
    ----------
    seed
        Seed of the only random source; same seed and start give identical events.
    start
        Simulated time of the stream's start (timezone-aware).
    rate
        Mean events per simulated second over a week.
    customers
        Size of the customer pool.
    max_open_sessions
        Cap on concurrently open sessions.
    drift_at
        After this many events, prices grow by `DRIFT_PRICE_FACTOR` and time on page by
        `DRIFT_TIME_FACTOR`.
    steady
        The same mean rate in every hour (no daily rhythm): load tests and soaks.
    """

    use_case = USE_CASE
    DRIFT = (f"prices x{DRIFT_PRICE_FACTOR:g} and time on page x{DRIFT_TIME_FACTOR:g} "
             "(the shop relaunches as a premium store)")

    def __init__(
        self,
        *,
        seed: int,
        start: datetime,
        rate: float = DEFAULT_RATE,
        customers: int = 10_000,
        max_open_sessions: int = 5000,
        drift_at: int | None = None,
        steady: bool = False,
    ) -> None:
        super().__init__(seed=seed, drift_at=drift_at)
        if customers < 1 or max_open_sessions < 1:
            raise ValueError("customers and max_open_sessions must be >= 1")
        rng = self._rng
        self._catalogue = Catalogue.build(rng)
        self._customers = [Customer.build(rng, i) for i in range(customers)]
        self._max_open = max_open_sessions
        houston = utc_offset_hours((HOUSTON.lon_min + HOUSTON.lon_max) / 2)
        profile = FLAT_PROFILE if steady else weekly_profile({houston: 1.0})
        self._arrivals = ArrivalClock(start, rate=rate / EVENTS_PER_ARRIVAL, rng=rng,
                                      profile=profile)
        self._arrivals.advance()
        self._due: list[tuple[int, int, _Session]] = []
        self._scheduled = 0
        self.expired_sessions = 0

    @property
    def open_sessions(self) -> int:
        """Sessions waiting for their next event (never more than `max_open_sessions`)."""
        return len(self._due)

    def _next_payload(self) -> dict[str, Any]:
        rng = self._rng
        if self._due and self._due[0][0] <= self._arrivals.now_us:
            now_us, _, session = heapq.heappop(self._due)
            if now_us - session.last_us > SESSION_TIMEOUT_SECONDS * _MICROSECONDS:
                self.expired_sessions += 1
                session = _Session(random_uuid(rng), session.customer)
        else:
            now_us = self._arrivals.now_us
            self._arrivals.advance()
            if len(self._due) >= self._max_open:
                heapq.heappop(self._due)
            session = _Session(random_uuid(rng), rng.choice(self._customers))
        payload = self._event(session, now_us)
        self._schedule(session, payload["event_type"], payload["time_on_page_seconds"])
        return payload

    def _event(self, session: _Session, now_us: int) -> dict[str, Any]:
        """The session's next event; updates focus, cart and search state."""
        rng = self._rng
        event_type = self._event_type(session)
        product: Product | None = None
        quantity: int | None = None
        query: str | None = None
        if event_type == "search":
            category = (rng.choice(session.customer.favourite_categories)
                        if rng.random() < 0.6 else rng.choice(PRODUCT_CATEGORIES))
            query = search_query(rng, category)
            page_url = "https://example.com/search?q=" + query.replace(" ", "+")
            session.searched_category, session.focus = category, None
        elif event_type == "purchase":
            assert session.cart is not None, "a purchase is only drawn with a full cart"
            product, quantity = session.cart
            page_url = product.page_url
            session.cart = None
        else:
            if event_type == "page_view" or session.focus is None:
                session.focus = self._browse(session)
            product = session.focus
            page_url = product.page_url
            if event_type == "add_to_cart":
                quantity = rng.randint(1, 4)
                session.cart = (product, quantity)
        session.sequence += 1
        session.last_us = now_us
        payload: dict[str, Any] = {
            "event_id": random_uuid(rng),
            "customer_id": session.customer.customer_id,
            "session_id": session.session_id,
            "timestamp": format_timestamp(now_us),
            "event_type": event_type,
            "product_id": product.product_id if product else None,
            "product_category": product.category if product else None,
            "price": product.price if product else None,
            "page_url": page_url,
            "time_on_page_seconds": _time_on_page(rng, event_type),
            "quantity": quantity,
            "search_query": query,
            "referrer_url": session.customer.visit_referrer(rng) if session.sequence == 1 else None,
            **session.customer.as_fields(),
            "session_event_sequence": session.sequence,
        }
        if self.drifted:
            if payload["price"] is not None:
                payload["price"] = round(payload["price"] * DRIFT_PRICE_FACTOR, 2)
            payload["time_on_page_seconds"] = min(86_400, round(payload["time_on_page_seconds"] * DRIFT_TIME_FACTOR))
        return payload

    def _event_type(self, session: _Session) -> str:
        """The original state machine; a purchase needs something in the cart."""
        rng = self._rng
        if session.sequence == 0:
            return _FIRST_EVENT.draw(rng)
        if session.focus is not None and rng.random() < 0.4:
            event_type = _WITH_FOCUS.draw(rng)
        else:
            event_type = _BROWSING.draw(rng)
        if event_type == "add_to_cart" and session.cart is not None and rng.random() < 0.3:
            return "purchase"
        return event_type

    def _browse(self, session: _Session) -> Product:
        """A product to look at: from the last search, the customer's tastes, or the bestsellers."""
        rng, catalogue = self._rng, self._catalogue
        if session.searched_category is not None and rng.random() < 0.7:
            return rng.choice(catalogue.by_category[session.searched_category])
        if rng.random() < 0.5:
            favourite = rng.choice(session.customer.favourite_categories)
            return rng.choice(catalogue.by_category[favourite])
        return catalogue.popularity.draw(rng)

    def _schedule(self, session: _Session, event_type: str, time_on_page: int) -> None:
        """Queue the session's next event, unless the visitor leaves now."""
        rng = self._rng
        if session.sequence >= MAX_SESSION_EVENTS or rng.random() < _LEAVE_PROBABILITY[event_type]:
            return
        if rng.random() < _AWAY_PROBABILITY:
            gap_seconds = rng.uniform(SESSION_TIMEOUT_SECONDS + 60, 3600)
        else:
            gap_seconds = time_on_page + rng.uniform(1.0, 15.0)
        self._scheduled += 1
        due_us = session.last_us + round(gap_seconds * _MICROSECONDS)
        heapq.heappush(self._due, (due_us, self._scheduled, session))


def _time_on_page(rng: random.Random, event_type: str) -> int:
    if event_type == "purchase":
        return rng.randint(30, 180)
    if event_type == "search":
        return rng.randint(5, 60)
    return rng.randint(5, 300)
