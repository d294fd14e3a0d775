"""Plausible client devices: a device type, an OS that fits it, a browser that fits the OS.

Examples
--------
>>> import random
>>> device = draw_device(random.Random(3))
>>> device.device_type in DEVICE_TYPES and device.user_agent.startswith("Mozilla/5.0 (")
True
>>> draw_device(random.Random(3)) == device
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from coelho.producers.base import Weighted

__all__ = ["DEVICE_TYPES", "Device", "draw_device"]

DEVICE_TYPES = ("Mobile", "Desktop", "Tablet")

_DEVICE_TYPE = Weighted.of({"Mobile": 0.55, "Desktop": 0.35, "Tablet": 0.10})
_OS_BY_DEVICE_TYPE = {
    "Mobile": Weighted.of({"iOS": 0.45, "Android": 0.50, "Other": 0.05}),
    "Tablet": Weighted.of({"iOS": 0.60, "Android": 0.35, "Other": 0.05}),
    "Desktop": Weighted.of({"Windows": 0.62, "macOS": 0.28, "Linux": 0.07, "Other": 0.03}),
}
_BROWSER_BY_OS = {
    "iOS": Weighted.of({"Safari": 0.72, "Chrome": 0.22, "Firefox": 0.02, "Other": 0.04}),
    "Android": Weighted.of({"Chrome": 0.72, "Other": 0.14, "Opera": 0.08, "Firefox": 0.06}),
    "Windows": Weighted.of({"Chrome": 0.64, "Edge": 0.22, "Firefox": 0.09, "Opera": 0.05}),
    "macOS": Weighted.of({"Safari": 0.45, "Chrome": 0.45, "Firefox": 0.07, "Edge": 0.03}),
    "Linux": Weighted.of({"Firefox": 0.50, "Chrome": 0.45, "Other": 0.05}),
    "Other": Weighted.of({"Other": 0.60, "Chrome": 0.40}),
}
_PLATFORM = {
    "iOS": "iPhone; CPU iPhone OS 17_5 like Mac OS X",
    "Android": "Linux; Android 14; SM-S918B",
    "Windows": "Windows NT 10.0; Win64; x64",
    "macOS": "Macintosh; Intel Mac OS X 10_15_7",
    "Linux": "X11; Linux x86_64",
    "Other": "X11; CrOS x86_64 15917.71.0",
}
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_ENGINE = {
    "Chrome": _WEBKIT + " Chrome/{v}.0.0.0 Safari/537.36",
    "Edge": _WEBKIT + " Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
    "Opera": _WEBKIT + " Chrome/{v}.0.0.0 Safari/537.36 OPR/{o}.0.0.0",
    "Safari": "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Firefox": "Gecko/20100101 Firefox/{v}.0",
    "Other": _WEBKIT + " SamsungBrowser/{o}.0 Chrome/{v}.0.0.0 Safari/537.36",
}


@dataclass(frozen=True, slots=True)
class Device:
    """One client device as a user keeps it across visits."""

    device_type: str
    os: str
    browser: str
    user_agent: str


def draw_device(rng: random.Random) -> Device:
    """A random but internally consistent device (the OS fits the type, the browser the OS)."""
    device_type = _DEVICE_TYPE.draw(rng)
    os = _OS_BY_DEVICE_TYPE[device_type].draw(rng)
    browser = _BROWSER_BY_OS[os].draw(rng)
    engine = _ENGINE[browser].format(v=rng.randint(118, 131), o=rng.randint(20, 110))
    return Device(device_type, os, browser, f"Mozilla/5.0 ({_PLATFORM[os]}) {engine}")
