"""Main file of the Spark ingestion job under the spark-operator: `coelho ingest spark` with the job's arguments.

The SparkApplication (infra/spark/sparkapplication.yaml) names it `local:///opt/coelho/infra/spark/ingest.py`; the
driver pod runs it through spark-submit (client mode inside the pod) with the image's baked jars.
"""

from __future__ import annotations

import sys

from coelho.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", "spark", *sys.argv[1:]]))
