"""The local stand-in for Knative's KafkaSource, driven by the manifests in eventing/knative/."""

from __future__ import annotations
