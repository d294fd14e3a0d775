"""Fixtures of the deployment tests: the manifests, Knative's own validator (built once), the CRD schemas."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import ROOT
from support.crds import CACHE, GO_ENV, crd_files, crd_schemas, manifest_files

VALIDATOR_SOURCE = ROOT / "infra" / "validate"
KNATIVE_CONFIG = ROOT / "infra" / "knative" / "config" / "knative-config.yaml"


@pytest.fixture(scope="session")
def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) of every Kubernetes object under infra/ and eventing/knative/."""
    return [(path, doc) for path in manifest_files() for doc in yaml.safe_load_all(path.read_text())
            if isinstance(doc, dict)]


@pytest.fixture(scope="session")
def validator() -> Path:
    """infra/validate built against the Knative Go modules, into .cache/bin (rebuilt when its source changes;
    the first build takes several minutes, later ones reuse Go's build cache under .cache/go)."""
    binary = CACHE / "bin" / "knative-validate"
    digest = hashlib.sha256(b"".join((VALIDATOR_SOURCE / name).read_bytes()
                                     for name in ("main.go", "go.mod", "go.sum"))).hexdigest()
    stamp = binary.with_suffix(".sha256")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with (binary.parent / ".knative-validate.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (binary.exists() and stamp.exists() and stamp.read_text() == digest):
            subprocess.run(["go", "build", "-o", str(binary), "."], cwd=VALIDATOR_SOURCE, check=True,
                           env={**os.environ, **GO_ENV}, timeout=1800)
            stamp.write_text(digest)
    return binary


@pytest.fixture(scope="session")
def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → strict JSON schema of every CRD of the pinned releases."""
    return crd_schemas(crd_files())
