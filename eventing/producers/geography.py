"""Places: the Houston bounding box of the original ETA/ECCI producers, world regions, distances.

Examples
--------
>>> round(haversine_km(29.7604, -95.3698, 29.9902, -95.3368), 1)  # downtown to IAH airport
25.7
>>> import random
>>> lat, lon = HOUSTON.uniform(random.Random(0))
>>> HOUSTON.contains(lat, lon)
True
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["HOUSTON", "REGIONS", "Box", "Region", "haversine_km"]

EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres (R = 6371 km, as the original)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@dataclass(frozen=True)
class Box:
    """A latitude/longitude rectangle."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def uniform(self, rng: random.Random) -> tuple[float, float]:
        """A uniformly random point inside."""
        return rng.uniform(self.lat_min, self.lat_max), rng.uniform(self.lon_min, self.lon_max)

    def near(
        self, rng: random.Random, lat: float, lon: float, spread: float,
    ) -> tuple[float, float]:
        """A point scattered normally around (lat, lon) by `spread` degrees, kept inside."""
        return (
            min(max(rng.gauss(lat, spread), self.lat_min), self.lat_max),
            min(max(rng.gauss(lon, spread), self.lon_min), self.lon_max),
        )

    def contains(self, lat: float, lon: float) -> bool:
        """True when (lat, lon) lies inside, edges included."""
        return self.lat_min <= lat <= self.lat_max and self.lon_min <= lon <= self.lon_max


HOUSTON = Box(29.5, 30.1, -95.8, -95.0)


@dataclass(frozen=True)
class Region:
    """A metropolitan area where card holders live: centre, spread, currency, population share."""

    name: str
    lat: float
    lon: float
    spread: float
    currency: str
    weight: float

    def point(self, rng: random.Random) -> tuple[float, float]:
        """A random point of the metro area (normal around the centre)."""
        lat = min(max(rng.gauss(self.lat, self.spread), -90.0), 90.0)
        lon = min(max(rng.gauss(self.lon, self.spread), -180.0), 180.0)
        return lat, lon


#: Card holders' home regions (currencies limited to the original seven).
REGIONS = (
    Region("New York", 40.71, -74.01, 0.25, "USD", 0.14),
    Region("Houston", 29.76, -95.37, 0.20, "USD", 0.10),
    Region("Los Angeles", 34.05, -118.24, 0.25, "USD", 0.12),
    Region("Toronto", 43.65, -79.38, 0.20, "CAD", 0.07),
    Region("Sao Paulo", -23.55, -46.63, 0.25, "BRL", 0.09),
    Region("London", 51.51, -0.13, 0.20, "GBP", 0.11),
    Region("Paris", 48.86, 2.35, 0.20, "EUR", 0.08),
    Region("Berlin", 52.52, 13.40, 0.20, "EUR", 0.07),
    Region("Madrid", 40.42, -3.70, 0.20, "EUR", 0.05),
    Region("Tokyo", 35.68, 139.69, 0.25, "JPY", 0.09),
    Region("Sydney", -33.87, 151.21, 0.20, "AUD", 0.05),
    Region("Singapore", 1.35, 103.82, 0.08, "USD", 0.03),
)
