"""COELHO RealTime: online machine learning on event streams, as Knative functions."""

from __future__ import annotations

import sys

__all__ = ["__version__"]

__version__ = "0.1.0"

# `import river` also imports its optional scikit-learn and SQLAlchemy stream readers whenever those
# packages are installed (MLflow brings both), which adds about 0.4 s to every function's cold start.
# We never use them, so mark them missing; river's own `try: ... except ImportError` then skips them.
for _unused in ("river.stream.iter_sklearn", "river.stream.iter_sql"):
    sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]
