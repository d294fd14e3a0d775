"""The simulated world of card payments: merchants with a fixed category and card holders
with persistent habits (home, currency, spend level, device, usual merchants).

Examples
--------
>>> import random
>>> rng = random.Random(5)
>>> merchants = Merchants.build(rng)
>>> holder = CardHolder.build(rng, 42, now_us=0, merchants=merchants)
>>> holder.user_id, holder.currency in {"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL"}
('user_000042', True)
>>> holder.account_age_days(now_us=0) >= 0
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from coelho.producers.base import Weighted
from coelho.producers.devices import Device, draw_device
from coelho.producers.geography import REGIONS, Region
from coelho.producers.seasonality import MICROSECONDS_PER_HOUR

__all__ = [
    "RISKY_CATEGORIES", "CardHolder", "Merchants", "random_ip", "random_payment_method",
]

MICROSECONDS_PER_DAY = 24 * MICROSECONDS_PER_HOUR
RISKY_CATEGORIES = ("electronics", "luxury_items", "digital_goods", "gambling")

_MERCHANT_CATEGORY = Weighted.of({
    "groceries": 0.20, "clothing": 0.14, "services": 0.14, "other": 0.14, "electronics": 0.10,
    "travel": 0.08, "digital_goods": 0.10, "luxury_items": 0.05, "gambling": 0.05,
})
_PAYMENT_METHOD = Weighted.of({
    "credit_card": 0.40, "debit_card": 0.30, "paypal": 0.15, "bank_transfer": 0.12, "crypto": 0.03,
})
_REGION = Weighted.of({region: region.weight for region in REGIONS})
_USUAL_MERCHANTS = 6
_NEW_ACCOUNT_SHARE = 0.03
_MAX_ACCOUNT_AGE_DAYS = 1825


def random_ip(rng: random.Random) -> str:
    """A public-looking IPv4 address."""
    return f"{rng.randint(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"


@dataclass(frozen=True)
class Merchants:
    """Merchants `merchant_1..merchant_N`, each selling in one category, with Zipf popularity."""

    categories: tuple[str, ...]
    popularity: Weighted[int]
    by_category: dict[str, tuple[int, ...]]

    @classmethod
    def build(cls, rng: random.Random, count: int = 200) -> Merchants:
        """Draw a category per merchant; merchant 1 is the most popular."""
        categories = tuple(_MERCHANT_CATEGORY.draw(rng) for _ in range(count))
        by_category: dict[str, list[int]] = {}
        for number, category in enumerate(categories, start=1):
            by_category.setdefault(category, []).append(number)
        popularity = Weighted.of({n: 1.0 / n**0.8 for n in range(1, count + 1)})
        return cls(categories, popularity, {k: tuple(v) for k, v in by_category.items()})

    def category(self, number: int) -> str:
        """The category merchant `number` sells in."""
        return self.categories[number - 1]

    def risky(self, rng: random.Random) -> int:
        """A merchant selling in a category fraudsters favour."""
        pool = [c for c in RISKY_CATEGORIES if c in self.by_category]
        return rng.choice(self.by_category[rng.choice(pool)])


@dataclass(frozen=True, slots=True)
class CardHolder:
    """One user's persistent profile; every legitimate payment of the user starts from it."""

    user_id: str
    region: Region
    home_lat: float
    home_lon: float
    currency: str
    median_spend: float
    created_us: int
    device: Device
    ip_address: str
    payment_method: str
    merchants: tuple[int, ...]

    @classmethod
    def build(
        cls,
        rng: random.Random,
        index: int,
        *,
        now_us: int,
        merchants: Merchants,
        max_age_days: float | None = None,
    ) -> CardHolder:
        """A new holder `user_{index:06d}`; `max_age_days` forces a recently opened account."""
        region = _REGION.draw(rng)
        lat, lon = region.point(rng)
        if max_age_days is None:
            young = rng.random() < _NEW_ACCOUNT_SHARE
            max_age_days = 30.0 if young else _MAX_ACCOUNT_AGE_DAYS
        age_us = round(rng.uniform(0.0, max_age_days) * MICROSECONDS_PER_DAY)
        return cls(
            user_id=f"user_{index:06d}",
            region=region,
            home_lat=lat,
            home_lon=lon,
            currency="USD" if rng.random() < 0.08 else region.currency,
            median_spend=min(max(rng.lognormvariate(3.7, 0.6), 5.0), 400.0),
            created_us=now_us - age_us,
            device=draw_device(rng),
            ip_address=random_ip(rng),
            payment_method=_PAYMENT_METHOD.draw(rng),
            merchants=tuple(merchants.popularity.draw(rng) for _ in range(_USUAL_MERCHANTS)),
        )

    def account_age_days(self, now_us: int) -> int:
        """Whole days since the account was opened (grows with simulated time)."""
        return max(0, (now_us - self.created_us) // MICROSECONDS_PER_DAY)


def random_payment_method(rng: random.Random) -> str:
    """A payment method at population frequencies."""
    return _PAYMENT_METHOD.draw(rng)
