"""COELHO RealTime: online machine learning on event streams, as Knative functions."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
