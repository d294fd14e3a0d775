"""The shop the ECCI visitors browse: a product catalogue with one category and one base price
per product, search vocabulary, and customers with a fixed device and home.

Examples
--------
>>> import random
>>> rng = random.Random(4)
>>> shop = Catalogue.build(rng)
>>> len(shop.products), shop.products[0].product_id, shop.products[-1].product_id
(101, 'prod_1000', 'prod_1100')
>>> product = shop.products[42]
>>> product.page_url == f"https://example.com/{slug(product.category)}/{product.product_id}"
True
>>> slug("Fashion & Apparel")
'fashion-apparel'
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from coelho.core.ecci import PRODUCT_CATEGORIES, REFERRERS
from coelho.producers.base import Weighted
from coelho.producers.devices import draw_device
from coelho.producers.geography import HOUSTON

__all__ = ["Catalogue", "Customer", "Product", "search_query", "slug"]

# Typical price (USD) per category; products scatter log-normally around it.
_MEDIAN_PRICE = {
    "Electronics": 250.0, "Fashion & Apparel": 45.0, "Home & Garden": 70.0,
    "Beauty & Personal Care": 22.0, "Sports & Outdoors": 60.0, "Books": 18.0,
    "Grocery & Gourmet Food": 14.0, "Automotive": 110.0, "Toys & Games": 30.0,
    "Computers": 700.0, "Pet Supplies": 28.0, "Health & Household": 20.0,
}
_SEARCH_WORDS = {
    "Electronics": ("wireless", "headphones", "bluetooth", "speaker", "4k", "tv", "charger"),
    "Fashion & Apparel": ("cotton", "shirt", "dress", "jeans", "sneakers", "jacket", "summer"),
    "Home & Garden": ("lamp", "sofa", "garden", "hose", "rug", "kitchen", "storage"),
    "Beauty & Personal Care": ("moisturizer", "shampoo", "serum", "lipstick", "organic"),
    "Sports & Outdoors": ("yoga", "mat", "tent", "bike", "running", "dumbbells", "camping"),
    "Books": ("novel", "cookbook", "history", "kids", "bestseller", "paperback"),
    "Grocery & Gourmet Food": ("coffee", "tea", "snacks", "olive", "oil", "gluten", "free"),
    "Automotive": ("tires", "wiper", "blades", "motor", "oil", "car", "charger"),
    "Toys & Games": ("lego", "puzzle", "board", "game", "doll", "kids", "outdoor"),
    "Computers": ("laptop", "gaming", "monitor", "ssd", "keyboard", "mouse", "ram"),
    "Pet Supplies": ("dog", "food", "cat", "litter", "leash", "toy", "treats"),
    "Health & Household": ("vitamins", "paper", "towels", "detergent", "first", "aid", "kit"),
}
_REFERRER = Weighted.of(dict(zip(REFERRERS, (
    0.28, 0.24, 0.08, 0.06, 0.06, 0.02, 0.04, 0.05, 0.02, 0.02, 0.01, 0.03, 0.01, 0.05, 0.03,
), strict=True)))
_FIRST_PRODUCT = 1000
_LAST_PRODUCT = 1100


def slug(category: str) -> str:
    """The URL path segment of a category."""
    return category.lower().replace(" & ", "-").replace(" ", "-")


def search_query(rng: random.Random, category: str) -> str:
    """One to four words a shopper looking for `category` might type."""
    return " ".join(rng.choice(_SEARCH_WORDS[category]) for _ in range(rng.randint(1, 4)))


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue entry: its category and base price never change."""

    product_id: str
    category: str
    price: float
    page_url: str


@dataclass(frozen=True)
class Catalogue:
    """Products ``prod_1000..prod_1100`` with Zipf popularity, indexed by category."""

    products: tuple[Product, ...]
    by_category: dict[str, tuple[Product, ...]]
    popularity: Weighted[Product]

    @classmethod
    def build(cls, rng: random.Random) -> Catalogue:
        """Every category gets at least one product; the rest are drawn at random."""
        count = _LAST_PRODUCT - _FIRST_PRODUCT + 1
        categories = list(PRODUCT_CATEGORIES)
        categories += [rng.choice(PRODUCT_CATEGORIES) for _ in range(count - len(categories))]
        rng.shuffle(categories)
        products = tuple(
            _product(rng, _FIRST_PRODUCT + i, category) for i, category in enumerate(categories)
        )
        ranks = list(range(1, count + 1))
        rng.shuffle(ranks)
        popularity = Weighted.of({p: 1.0 / rank for p, rank in zip(products, ranks, strict=True)})
        by_category = {
            c: tuple(p for p in products if p.category == c) for c in PRODUCT_CATEGORIES
        }
        return cls(products, by_category, popularity)


def _product(rng: random.Random, number: int, category: str) -> Product:
    raw = rng.lognormvariate(math.log(_MEDIAN_PRICE[category]), 0.5)
    price = min(max(math.floor(raw) + 0.99, 5.99), 2499.99)
    product_id = f"prod_{number}"
    page_url = f"https://example.com/{slug(category)}/{product_id}"
    return Product(product_id, category, price, page_url)


@dataclass(frozen=True, slots=True)
class Customer:
    """A shopper: same device, home and tastes on every visit."""

    customer_id: str
    device_info: dict[str, str]
    location: dict[str, float]
    favourite_categories: tuple[str, str]
    referrer: str

    @classmethod
    def build(cls, rng: random.Random, index: int) -> Customer:
        """Customer ``customer_{index:06d}`` living in the Houston box."""
        device = draw_device(rng)
        lat, lon = HOUSTON.uniform(rng)
        return cls(
            customer_id=f"customer_{index:06d}",
            device_info={"device_type": device.device_type, "browser": device.browser,
                         "os": device.os},
            location={"lat": round(lat, 3), "lon": round(lon, 3)},
            favourite_categories=(rng.choice(PRODUCT_CATEGORIES), rng.choice(PRODUCT_CATEGORIES)),
            referrer=_REFERRER.draw(rng),
        )

    def visit_referrer(self, rng: random.Random) -> str:
        """Where this visit came from: usually the customer's habit, else anywhere."""
        return self.referrer if rng.random() < 0.5 else _REFERRER.draw(rng)

    def as_fields(self) -> dict[str, Any]:
        """Fresh copies of the customer's event fields."""
        return {"device_info": dict(self.device_info), "location": dict(self.location)}
