"""Ingestion into Delta Lake: the Spark Structured Streaming job and the embedded delta-sink writer."""

from __future__ import annotations
