"""Deployment on Knative: the role policy and the Services generated from the function catalog."""
