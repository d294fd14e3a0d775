"""Card transactions (TFD) from a population of card holders with persistent habits.

Legitimate payments follow each holder's habits and local daily rhythm. Fraud comes in
campaigns: a compromised account (or a freshly opened one) shows a short burst of card tests
(1-50) followed by cash-outs (300-6000), from an unusual device, IP and often a foreign place
where it is night, with missing CVVs and billing mismatches far more often than usual.

Examples
--------
>>> from datetime import UTC, datetime
>>> events = TfdGenerator(seed=1, start=datetime(2026, 3, 2, tzinfo=UTC), users=50)
>>> event = next(events)
>>> event["user_id"].startswith("user_"), event["is_fraud"] in (0, 1)
(True, True)
>>> sorted(event) == sorted(f.name for f in USE_CASE.schema.fields)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coelho.core.tfd import CURRENCIES, PRODUCT_CATEGORIES, USE_CASE
from coelho.core.timeparts import utc_offset_hours
from coelho.producers.base import EventGenerator, Weighted, random_uuid
from coelho.producers.clock import FLAT_PROFILE, ArrivalClock, to_microseconds
from coelho.producers.devices import Device, draw_device
from coelho.producers.geography import REGIONS, Region
from coelho.producers.seasonality import (
    PEAK_ACTIVITY,
    activity,
    hour_and_weekday,
    local_hour_of_week,
    weekly_profile,
)
from coelho.producers.tfd_population import (
    RISKY_CATEGORIES,
    CardHolder,
    Merchants,
    random_ip,
    random_payment_method,
)

__all__ = ["DEFAULT_RATE", "TfdGenerator"]

DEFAULT_RATE = 3.6  # events/s of the original producer
_MAX_CAMPAIGNS = 8
_CONTINUE_CAMPAIGN = 0.75
_NEW_ACCOUNT_FRAUD = 0.25
_MAX_SELECTION_TRIES = 16
#: After `drift_at` events fraud comes this many times as often, disguised as its victims' own payments.
DRIFT_FRAUD_FACTOR = 4.0
_DISGUISED_CATEGORIES = ("digital_goods", "electronics")

_LEGIT_TYPE = Weighted.of({
    "purchase": 0.60, "payment": 0.15, "transfer": 0.10, "withdrawal": 0.10, "deposit": 0.05,
})
_FRAUD_TYPE = Weighted.of({"purchase": 0.50, "transfer": 0.25, "withdrawal": 0.20, "payment": 0.05})
_FRAUD_PAYMENT = Weighted.of({
    "credit_card": 0.50, "crypto": 0.30, "debit_card": 0.10, "paypal": 0.07, "bank_transfer": 0.03,
})
_SPEND_SCALE = {
    "groceries": 0.6, "clothing": 1.0, "travel": 3.0, "services": 1.2, "digital_goods": 0.4,
    "luxury_items": 4.0, "gambling": 1.5, "electronics": 2.5, "other": 1.0,
}


def _population_by_offset() -> dict[int, float]:
    """Share of card holders per UTC offset, for the worldwide arrival profile."""
    weights: dict[int, float] = {}
    for region in REGIONS:
        offset = utc_offset_hours(region.lon)
        weights[offset] = weights.get(offset, 0.0) + region.weight
    return weights


@dataclass(slots=True)
class _Campaign:
    """A fraudster working one account: where from, with what, and what is left to do."""

    holder: CardHolder
    device: Device
    ip_address: str
    lat: float
    lon: float
    card_tests: int
    cash_outs: int


class TfdGenerator(EventGenerator):
    """Transactions of `users` card holders, `fraud_rate` of them fraudulent on average.

    Parameters
    ----------
    seed
        Seed of the only random source; same seed and start give identical events.
    start
        Simulated time of the stream's start (timezone-aware).
    rate
        Mean transactions per simulated second over a week.
    fraud_rate
        Expected share of fraudulent transactions (label ``is_fraud`` = 1).
    users
        Size of the card-holder pool (``user_000000`` ...).
    drift_at
        After this many events, fraud runs at `DRIFT_FRAUD_FACTOR` times `fraud_rate` and looks like
        the victims' own payments (home place, device and IP, CVV given, billing matching, usual
        amounts), only in digital goods and electronics.
    steady
        The same mean rate in every hour (no daily rhythm): load tests and soaks.
    """

    use_case = USE_CASE
    DRIFT = (f"fraud x{DRIFT_FRAUD_FACTOR:g}, disguised as the victims' own payments "
             "(a new fraud ring with stolen device sessions)")

    def __init__(
        self,
        *,
        seed: int,
        start: datetime,
        rate: float = DEFAULT_RATE,
        fraud_rate: float = 0.01,
        users: int = 5000,
        drift_at: int | None = None,
        steady: bool = False,
    ) -> None:
        super().__init__(seed=seed, drift_at=drift_at)
        if not 0.0 <= fraud_rate <= 1.0:
            raise ValueError(f"fraud_rate must be within [0, 1], got {fraud_rate}")
        if users < 1:
            raise ValueError(f"users must be >= 1, got {users}")
        now_us = to_microseconds(start)
        self._fraud_rate = fraud_rate
        self._merchants = Merchants.build(self._rng)
        self._holders = [
            CardHolder.build(self._rng, i, now_us=now_us, merchants=self._merchants)
            for i in range(users)
        ]
        self._next_user_index = users
        self._campaigns: list[_Campaign] = []
        profile = FLAT_PROFILE if steady else weekly_profile(_population_by_offset())
        self._clock = ArrivalClock(start, rate=rate, rng=self._rng, profile=profile)

    def _next_payload(self) -> dict[str, Any]:
        self._clock.advance()
        if self.drifted:
            if self._rng.random() < min(1.0, self._fraud_rate * DRIFT_FRAUD_FACTOR):
                return self._disguised_fraud()
            return self._legitimate()
        if self._rng.random() < self._fraud_rate:
            return self._fraudulent()
        return self._legitimate()

    def _legitimate(self) -> dict[str, Any]:
        rng = self._rng
        holder = self._active_holder()
        merchant = (
            rng.choice(holder.merchants) if rng.random() < 0.85
            else self._merchants.popularity.draw(rng)
        )
        category = self._merchants.category(merchant)
        if rng.random() < 0.10:
            category = rng.choice(PRODUCT_CATEGORIES)
        amount = holder.median_spend * rng.lognormvariate(0.0, 0.6) * _SPEND_SCALE[category]
        if rng.random() < 0.97:
            lat, lon = rng.gauss(holder.home_lat, 0.03), rng.gauss(holder.home_lon, 0.03)
        else:
            lat, lon = rng.choice(REGIONS).point(rng)
        device = holder.device if rng.random() < 0.93 else draw_device(rng)
        return self._payload(
            holder,
            amount=min(max(amount, 1.0), 9000.0),
            currency=holder.currency if rng.random() < 0.94 else rng.choice(CURRENCIES),
            merchant=merchant,
            category=category,
            transaction_type=_LEGIT_TYPE.draw(rng),
            payment_method=(
                holder.payment_method if rng.random() < 0.88 else random_payment_method(rng)
            ),
            location=(lat, lon),
            ip_address=holder.ip_address if rng.random() < 0.90 else random_ip(rng),
            device=device,
            cvv_provided=rng.random() >= 0.005,
            billing_address_match=rng.random() >= 0.02,
            is_fraud=0,
        )

    def _fraudulent(self) -> dict[str, Any]:
        rng = self._rng
        campaign = self._campaign()
        if campaign.card_tests:
            campaign.card_tests -= 1
            amount = rng.uniform(1.0, 50.0)
        else:
            campaign.cash_outs -= 1
            amount = rng.uniform(300.0, 6000.0)
        if not campaign.card_tests and not campaign.cash_outs:
            self._campaigns.remove(campaign)
        merchant = (
            self._merchants.risky(rng) if rng.random() < 0.6
            else self._merchants.popularity.draw(rng)
        )
        category = self._merchants.category(merchant)
        if rng.random() < 0.15:
            category = rng.choice(RISKY_CATEGORIES)
        holder = campaign.holder
        return self._payload(
            holder,
            amount=amount,
            currency=holder.currency if rng.random() < 0.6 else rng.choice(CURRENCIES),
            merchant=merchant,
            category=category,
            transaction_type=_FRAUD_TYPE.draw(rng),
            payment_method=_FRAUD_PAYMENT.draw(rng),
            location=(campaign.lat, campaign.lon),
            ip_address=campaign.ip_address,
            device=campaign.device,
            cvv_provided=rng.random() >= 0.43,
            billing_address_match=rng.random() >= 0.37,
            is_fraud=1,
        )

    def _disguised_fraud(self) -> dict[str, Any]:
        """Fraud from a hijacked session: the holder's own place, device, IP and habits."""
        rng = self._rng
        holder = self._active_holder()
        category = rng.choice([c for c in _DISGUISED_CATEGORIES if c in self._merchants.by_category])
        merchant = rng.choice(self._merchants.by_category[category])
        return self._payload(
            holder,
            amount=min(max(holder.median_spend * rng.lognormvariate(0.0, 0.6) * _SPEND_SCALE[category], 1.0), 9000.0),
            currency=holder.currency,
            merchant=merchant,
            category=category,
            transaction_type="purchase",
            payment_method=holder.payment_method,
            location=(rng.gauss(holder.home_lat, 0.03), rng.gauss(holder.home_lon, 0.03)),
            ip_address=holder.ip_address,
            device=holder.device,
            cvv_provided=True,
            billing_address_match=True,
            is_fraud=1,
        )

    def _active_holder(self) -> CardHolder:
        """A holder chosen in proportion to how active people are at their local time now."""
        rng, now_us = self._rng, self._clock.now_us
        holder = rng.choice(self._holders)
        for _ in range(_MAX_SELECTION_TRIES):
            local = local_hour_of_week(now_us, utc_offset_hours(holder.home_lon))
            if rng.random() * PEAK_ACTIVITY < activity(*hour_and_weekday(local)):
                break
            holder = rng.choice(self._holders)
        return holder

    def _campaign(self) -> _Campaign:
        """An ongoing campaign (bursts) or, now and then, a new one."""
        rng = self._rng
        ongoing = self._campaigns
        if ongoing and (len(ongoing) >= _MAX_CAMPAIGNS or rng.random() < _CONTINUE_CAMPAIGN):
            return rng.choice(ongoing)
        if rng.random() < _NEW_ACCOUNT_FRAUD:
            holder = CardHolder.build(
                rng, self._next_user_index, now_us=self._clock.now_us,
                merchants=self._merchants, max_age_days=14.0,
            )
            self._next_user_index += 1
        else:
            holder = rng.choice(self._holders)
        lat, lon = self._fraud_origin(holder)
        campaign = _Campaign(
            holder=holder,
            device=draw_device(rng) if rng.random() < 0.75 else holder.device,
            ip_address=random_ip(rng) if rng.random() < 0.85 else holder.ip_address,
            lat=lat,
            lon=lon,
            card_tests=0 if rng.random() < 0.4 else rng.randint(1, 3),
            cash_outs=rng.randint(1, 4),
        )
        ongoing.append(campaign)
        return campaign

    def _fraud_origin(self, holder: CardHolder) -> tuple[float, float]:
        """Near the holder's home, or abroad, preferably somewhere it is night now."""
        rng = self._rng
        if rng.random() < 0.45:
            return holder.region.point(rng)
        abroad = [region for region in REGIONS if region is not holder.region]
        at_night = [region for region in abroad if self._local_hour(region) < 6]
        region: Region = rng.choice(at_night if at_night and rng.random() < 0.7 else abroad)
        return region.point(rng)

    def _local_hour(self, region: Region) -> int:
        local = local_hour_of_week(self._clock.now_us, utc_offset_hours(region.lon))
        return local % 24

    def _payload(
        self,
        holder: CardHolder,
        *,
        amount: float,
        currency: str,
        merchant: int,
        category: str,
        transaction_type: str,
        payment_method: str,
        location: tuple[float, float],
        ip_address: str,
        device: Device,
        cvv_provided: bool,
        billing_address_match: bool,
        is_fraud: int,
    ) -> dict[str, Any]:
        lat, lon = location
        return {
            "transaction_id": random_uuid(self._rng),
            "user_id": holder.user_id,
            "timestamp": self._clock.isoformat(),
            "amount": round(amount, 2),
            "currency": currency,
            "merchant_id": f"merchant_{merchant}",
            "product_category": category,
            "transaction_type": transaction_type,
            "payment_method": payment_method,
            "location": {
                "lat": round(min(max(lat, -90.0), 90.0), 6),
                "lon": round(min(max(lon, -180.0), 180.0), 6),
            },
            "ip_address": ip_address,
            "device_info": {"os": device.os, "browser": device.browser},
            "user_agent": device.user_agent,
            "account_age_days": holder.account_age_days(self._clock.now_us),
            "cvv_provided": cvv_provided,
            "billing_address_match": billing_address_match,
            "is_fraud": is_fraud,
        }
